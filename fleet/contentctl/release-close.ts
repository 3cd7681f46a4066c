/**
 * `contentctl release close [--type T] --reason TEXT`: finishes an active
 * release that cannot move on (its group will never reach the sample, the
 * version was superseded) without taking anything back: every group keeps
 * what it lists now, and a new release can start. Audited (O3, O4).
 */
import { defineCommand } from "citty";
import { printJson, printText } from "../../core/cli/output.ts";
import { webhookAlerter } from "../alerts.ts";
import { cliActor } from "../operator.ts";
import { operatorArg, releaseArgs, releaseConfig, releaseEngine, renderRelease } from "./release-args.ts";

export default defineCommand({
  meta: {
    name: "close",
    description: "Close a stuck active release, leaving every group as it is (audited)",
  },
  args: {
    type: { type: "string", description: "Content type (needed when several releases are active)" },
    reason: {
      type: "string",
      required: true,
      description: "Why (recorded in the release log and audit trail)",
    },
    ...operatorArg,
    ...releaseArgs,
  },
  async run({ args }) {
    const config = releaseConfig(args);
    const alerter = webhookAlerter(config.alerts.urls, { timeoutMs: config.alerts.timeoutSeconds * 1000 });
    const engine = await releaseEngine(args, config, { alerter });
    const release = await engine.close({
      type: args.type,
      reason: args.reason,
      actor: args.operator ?? cliActor(),
    });
    await alerter.flush();
    const view = (await engine.status()).releases.find((r) => r.id === release.id);
    if (args.json) printJson(view ?? release);
    else printText(view ? renderRelease(view) : `closed ${release.id}`);
    return release;
  },
});
