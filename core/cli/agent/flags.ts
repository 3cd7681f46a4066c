/**
 * `agent flags [--json]`: every feature flag with the supplement's word
 * (content), the Flags Service's word (fleet, or the last one it gave), and
 * the result by the seed's table (docs/policy.md, "Flags"); then each feature gate: the value
 * configuration wants and the one the flag lets through ("Feature gates").
 */
import { defineCommand } from "citty";
import { snapshotFromDisk } from "../../effective/service.ts";
import { HealthBoard } from "../../health/reasons.ts";
import { log } from "../../log.ts";
import { printJson, printText, renderTable } from "../output.ts";
import { agentArgs, loadAgentConfig } from "./session.ts";

export default defineCommand({
  meta: {
    name: "flags",
    description: "Feature flags: supplement word, service word, and whether the feature is on",
  },
  args: agentArgs,
  run({ args }) {
    const snap = snapshotFromDisk(loadAgentConfig(args), log, new HealthBoard());
    if (args.json) {
      printJson({ supplement: snap.supplement, flags: snap.flags, gates: snap.gates });
      return;
    }
    const head = snap.supplement
      ? `supplement: ${snap.supplement.type} v${snap.supplement.version}`
      : "supplement: none installed (every flag is off)";
    printText(
      [
        head,
        renderTable(
          ["FLAG", "SUPPLEMENT", "SERVICE", "FEATURE"],
          snap.flags.map((f) => [
            f.flag,
            f.supplement ?? "-",
            f.serviceSource === "service" ? f.serviceEffective : `${f.serviceEffective} (${f.serviceSource})`,
            f.enabled ? "on" : "off",
          ]),
        ),
        "",
        snap.supplement
          ? "feature gates (a withheld feature runs in its safe mode):"
          : "feature gates: not in force until a Flags supplement is installed (features follow their config):",
        renderTable(
          ["KEY", "FLAG", "WANTED", "IN FORCE", "GATE"],
          snap.gates.map((g) => [
            g.key,
            g.flag,
            JSON.stringify(g.wanted) ?? "null",
            JSON.stringify(g.value) ?? "null",
            g.state,
          ]),
        ),
      ].join("\n"),
    );
  },
});
