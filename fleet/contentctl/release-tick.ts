/**
 * `contentctl release tick`: runs the scheduler once — automatic promotions
 * after soak, health-triggered aborts, resuming interrupted steps — for
 * deployments that drive it from cron instead of `contentctl serve --release`.
 * Health comes from the fleet database the serving processes write.
 */
import { defineCommand } from "citty";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { printJson, printText, renderTable } from "../../core/cli/output.ts";
import { webhookAlerter } from "../alerts.ts";
import { releaseArgs, releaseConfig, releaseEngine } from "./release-args.ts";

export default defineCommand({
  meta: { name: "tick", description: "Run the release scheduler once (promotions, aborts, resumes)" },
  args: releaseArgs,
  async run({ args }) {
    const config = releaseConfig(args);
    const alerter = webhookAlerter(config.alerts.urls, { timeoutMs: config.alerts.timeoutSeconds * 1000 });
    const result = await (await releaseEngine(args, config, { alerter })).tick();
    await alerter.flush();
    // Cron must notice a step that keeps failing; the rest of the tick has run.
    if (result.errors.length > 0) process.exitCode = EXIT.CONTENT;
    if (args.json) printJson(result);
    else {
      const rows = [
        ...result.actions.map((a) => [
          "release" in a ? a.release : "",
          a.kind,
          "group" in a ? a.group : "",
          "reason" in a ? a.reason : "",
        ]),
        ...result.notes.map((n) => [n.release, "wait", n.group ?? "", n.text]),
        ...result.errors.map((e) => [
          "release" in e.action ? e.action.release : "",
          `${e.action.kind} FAILED`,
          "group" in e.action ? e.action.group : "",
          `${e.code}: ${e.message}`,
        ]),
      ];
      printText(
        result.skipped ??
          (rows.length ? renderTable(["RELEASE", "ACTION", "GROUP", "WHY"], rows) : "nothing to do"),
      );
    }
    return result;
  },
});
