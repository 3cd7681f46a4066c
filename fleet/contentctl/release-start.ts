/**
 * `contentctl release start TYPE VERSION [--package FILE]`: stages an already
 * packed package and publishes it to the first release group. Without
 * --package the file is taken from `packages/TYPE-VERSION.tar` next to the
 * config. Refuses a version or signing time agents in some group would
 * refuse (R10, R11), content the agent's own handler rejects (validated in
 * its sandboxed host, validate.ts), and a second active release of the same type.
 */
import { join } from "node:path";
import { defineCommand } from "citty";
import { keyringFile, validatePackageFile } from "../../core/cli/contentctl/validate.ts";
import { printJson, printText } from "../../core/cli/output.ts";
import { ConfigError } from "../../core/errors.ts";
import { cliActor } from "../operator.ts";
import { operatorArg, releaseArgs, releaseConfig, releaseEngine, renderRelease } from "./release-args.ts";

export default defineCommand({
  meta: {
    name: "start",
    description:
      "Start a staged release: validate a packed package with the agent's own handler in its sandboxed host, then publish it to the first group",
  },
  args: {
    type: { type: "positional", required: true, description: "Content type, e.g. Hmpa_data" },
    version: { type: "positional", required: true, description: "Content version" },
    package: {
      type: "string",
      valueHint: "FILE",
      description: "Package file (default packages/TYPE-VERSION.tar)",
    },
    "content-key": {
      type: "string",
      valueHint: "FILE",
      description: "Content keyring (Lua types): the agent's handler needs it to load the rules it validates",
    },
    ...operatorArg,
    ...releaseArgs,
  },
  async run({ args }) {
    if (!/^[1-9][0-9]{0,15}$/.test(args.version)) {
      throw new ConfigError(
        "CFG_INVALID_ARGUMENT",
        `VERSION must be a positive integer, got ${JSON.stringify(args.version)}`,
      );
    }
    const config = releaseConfig(args);
    const packageFile =
      args.package ?? join(config.paths.file, "..", "packages", `${args.type}-${args.version}.tar`);
    // Before any group sees it: the agent's own handler must accept and load it (validate.ts).
    await validatePackageFile({
      file: packageFile,
      type: args.type,
      workDirFiles: keyringFile(args["content-key"]),
    });
    const engine = await releaseEngine(args, config);
    const release = await engine.start({
      type: args.type,
      version: Number(args.version),
      packageFile,
      actor: args.operator ?? cliActor(),
    });
    const view = (await engine.status()).releases.find((r) => r.id === release.id);
    if (args.json) printJson(view ?? release);
    else printText(view ? renderRelease(view) : `started ${release.id}`);
    return release;
  },
});
