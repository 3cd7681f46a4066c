/**
 * `agent config show [--json]`: the effective configuration — agent.json,
 * defaults and policy overlays resolved — with where each value came from,
 * plus the rule files in force and the ones that failed (docs/policy.md).
 */
import { defineCommand } from "citty";
import type { Origin } from "../../effective/resolver.ts";
import { snapshotFromDisk } from "../../effective/service.ts";
import { HealthBoard } from "../../health/reasons.ts";
import { log } from "../../log.ts";
import { printJson, printText, renderTable } from "../output.ts";
import { agentArgs, loadAgentConfig } from "./session.ts";

export function describeOrigin(o: Origin | undefined): string {
  if (!o) return "?";
  if (o.source === "default") return "default";
  if (o.source === "agent.json") return o.file ? `agent.json (${o.file})` : "agent.json";
  if (o.source === "flag")
    return `flag ${o.flag} off: ${JSON.stringify(o.wanted)} from ${describeOrigin(o.wantedOrigin)} withheld`;
  return `policy ${o.file} rule ${o.rule} (${o.document}${o.line ? `:${o.line}` : ""})`;
}

export default defineCommand({
  meta: { name: "show", description: "Show the effective configuration and where each value came from" },
  args: {
    ...agentArgs,
    key: { type: "string", description: "Only keys starting with this prefix, e.g. liveProtection" },
  },
  run({ args }) {
    const config = loadAgentConfig(args);
    const snap = snapshotFromDisk(config, log, new HealthBoard());
    const prefix = args.key;
    const values = prefix
      ? snap.values.filter((v) => v.key === prefix || v.key.startsWith(`${prefix}.`))
      : snap.values;
    if (args.json) {
      printJson({
        values,
        overlays: snap.overlays,
        failures: snap.failures,
        fleet: snap.fleet,
        appliedAt: snap.appliedAt,
      });
      return;
    }
    const out = [
      renderTable(
        ["KEY", "VALUE", "ORIGIN"],
        values.map((v) => [v.key, JSON.stringify(v.value) ?? "null", describeOrigin(v.origin)]),
      ),
    ];
    if (snap.failures.length > 0) {
      out.push("", "rule files that failed (their previous values, if any, stay in force):");
      for (const f of snap.failures) out.push(`  ${f.file}: ${f.code}: ${f.message}`);
    }
    printText(out.join("\n"));
  },
});
