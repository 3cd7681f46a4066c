/**
 * `contentctl release audit [--release ID] [--json]`: who promoted, forced,
 * aborted or closed which release, when and why — operators (CLI) and the
 * scheduler alike (O4). JSON: an array of {at, actor, action, release,
 * group?, reason}, oldest first (docs/cli.md).
 */
import { defineCommand } from "citty";
import { printJson, printText, renderTable } from "../../core/cli/output.ts";
import { releaseArgs, releaseConfig, releaseEngine } from "./release-args.ts";

export default defineCommand({
  meta: { name: "audit", description: "Show the audit trail of release actions (who, when, why)" },
  args: {
    release: { type: "string", valueHint: "ID", description: "Only this release (e.g. TestText-2)" },
    ...releaseArgs,
  },
  async run({ args }) {
    const engine = await releaseEngine(args, releaseConfig(args), { mode: "read" });
    const all = await engine.auditTrail();
    const records = args.release ? all.filter((r) => r.release === args.release) : all;
    if (args.json) printJson(records);
    else
      printText(
        records.length
          ? renderTable(
              ["AT", "ACTOR", "ACTION", "RELEASE", "GROUP", "REASON"],
              records.map((r) => [r.at, r.actor, r.action, r.release, r.group, r.reason]),
            )
          : "no audited actions",
      );
    return records;
  },
});
