/**
 * `contentctl release abort [--type T] --reason TEXT`: stops the active
 * release at whatever phase it is in. Groups it reached get the last good
 * content back as a new version with a new signature (agents refuse older
 * versions and older signatures); groups it did not reach are left alone.
 */
import { defineCommand } from "citty";
import { printJson, printText } from "../../core/cli/output.ts";
import { ConfigError } from "../../core/errors.ts";
import { webhookAlerter } from "../alerts.ts";
import { cliActor } from "../operator.ts";
import { operatorArg, releaseArgs, releaseConfig, releaseEngine, renderRelease } from "./release-args.ts";

export default defineCommand({
  meta: { name: "abort", description: "Abort the active release and take the groups it reached back" },
  args: {
    type: { type: "string", description: "Content type (needed when several releases are active)" },
    reason: { type: "string", required: true, description: "Why (recorded, shown, and sent with the alert)" },
    ...operatorArg,
    ...releaseArgs,
  },
  async run({ args }) {
    if (!args.reason.trim()) throw new ConfigError("CFG_INVALID_ARGUMENT", "--reason must not be empty");
    const config = releaseConfig(args);
    const alerter = webhookAlerter(config.alerts.urls, { timeoutMs: config.alerts.timeoutSeconds * 1000 });
    const engine = await releaseEngine(args, config, { alerter });
    const release = await engine.abort({
      type: args.type,
      reason: args.reason.trim(),
      actor: args.operator ?? cliActor(),
    });
    await alerter.flush();
    const view = (await engine.status()).releases.find((r) => r.id === release.id);
    if (args.json) printJson(view ?? release);
    else printText(view ? renderRelease(view) : `aborted ${release.id}`);
    return release;
  },
});
