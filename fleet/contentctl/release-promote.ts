/**
 * `contentctl release promote [--type T] [--force --reason TEXT]`: moves the
 * active release to its next group (the manual gates: engineering test →
 * internal → first public group; later groups follow on their own). Refused
 * until the current group has soaked and is judged healthy (O1), unless
 * --force with a reason (O2); either way it is audited (`release audit`).
 */
import { defineCommand } from "citty";
import { printJson, printText } from "../../core/cli/output.ts";
import { cliActor } from "../operator.ts";
import { operatorArg, releaseArgs, releaseConfig, releaseEngine, renderRelease } from "./release-args.ts";

export default defineCommand({
  meta: { name: "promote", description: "Promote the active release to its next release group" },
  args: {
    type: { type: "string", description: "Content type (needed when several releases are active)" },
    force: {
      type: "boolean",
      default: false,
      description: "Promote before the current group has soaked or while it is not healthy (needs --reason)",
    },
    reason: { type: "string", description: "Why (required with --force; recorded in the audit trail)" },
    ...operatorArg,
    ...releaseArgs,
  },
  async run({ args }) {
    const engine = await releaseEngine(args, releaseConfig(args));
    const release = await engine.promote({
      type: args.type,
      force: args.force,
      reason: args.reason,
      actor: args.operator ?? cliActor(),
    });
    const view = (await engine.status()).releases.find((r) => r.id === release.id);
    if (args.json) printJson(view ?? release);
    else printText(view ? renderRelease(view) : `promoted ${release.id}`);
    return release;
  },
});
