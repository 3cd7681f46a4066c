/**
 * `contentctl release promote [--type T] [--force]`: moves the active release
 * to its next group (the manual gates: engineering test → internal → first
 * public group; later groups follow on their own but may be promoted early).
 * Refused while the current group is unhealthy unless --force.
 */
import { defineCommand } from "citty";
import { printJson, printText } from "../../core/cli/output.ts";
import { releaseArgs, releaseConfig, releaseEngine, renderRelease } from "./release-args.ts";

export default defineCommand({
  meta: { name: "promote", description: "Promote the active release to its next release group" },
  args: {
    type: { type: "string", description: "Content type (needed when several releases are active)" },
    force: { type: "boolean", default: false, description: "Promote even if the current group is unhealthy" },
    ...releaseArgs,
  },
  async run({ args }) {
    const engine = await releaseEngine(args, releaseConfig(args));
    const release = await engine.promote({ type: args.type, force: args.force });
    const view = (await engine.status()).releases.find((r) => r.id === release.id);
    if (args.json) printJson(view ?? release);
    else printText(view ? renderRelease(view) : `promoted ${release.id}`);
    return release;
  },
});
