/**
 * `agent run-repair [--dry-run] [--json]`: checks and fixes this agent's
 * installation now. With a running agent, RepairKit runs in its repair
 * host; with none (or one that cannot start because the state is broken)
 * it runs here, from the installed RepairKit or, failing that, the
 * baked-in last-resort rules. Prints what was checked, repaired and what
 * failed; exit 0 when nothing failed, 3 when something did.
 */
import { defineCommand } from "citty";
import {
  agentArgs,
  agentConfigFile,
  connectIfRunning,
  loadAgentConfig,
  withOfflineAgent,
} from "../../core/cli/agent/session.ts";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { printJson, printText, renderTable } from "../../core/cli/output.ts";
import type { AgentConfig } from "../../core/config.ts";
import { describeCycle } from "./actions.ts";
import type { AgentActions } from "./facts.ts";
import type { RepairReport } from "./report.ts";
import { repairOffline, repairOnline } from "./run.ts";

const MARK: Record<string, string> = {
  ok: "ok",
  repaired: "REPAIRED",
  "would-repair": "WOULD REPAIR",
  failed: "FAILED",
  warning: "warning",
};

export function renderRepair(r: RepairReport): string {
  const lines = [
    `RepairKit ${r.ruleset.source}${r.ruleset.version !== null ? ` v${r.ruleset.version}` : ""} · ${r.mode}${
      r.dryRun ? " · dry run" : ""
    } · ${r.stateDir}`,
  ];
  if (r.ruleset.fallbackReason) lines.push(`delivered rules not used: ${r.ruleset.fallbackReason}`);
  lines.push(
    "",
    renderTable(
      ["STATUS", "CHECK", "DETAIL"],
      r.checks.map((c) => {
        const notes = c.messages.filter((m) => m.level !== "ok" || c.status === "ok").map((m) => m.text);
        const fixes = c.fixes.map((f) => `${f.status}: ${f.description}${f.error ? ` (${f.error})` : ""}`);
        return [
          MARK[c.status] ?? c.status,
          c.id,
          [...notes, ...fixes, ...(c.error ? [c.error] : [])].join("; "),
        ];
      }),
    ),
    "",
    `${r.summary.checked} checked · ${r.summary.ok} ok · ${r.summary.repaired} repaired · ${r.summary.wouldRepair} would repair · ${r.summary.failed} failed · ${r.summary.warnings} warnings`,
  );
  return lines.join("\n");
}

/** Actions after an offline repair: an in-process agent, started only if the state now allows it. */
function offlineActions(config: AgentConfig): AgentActions {
  return {
    update: () =>
      withOfflineAgent(config, async (agent) => {
        const r = await agent.update();
        return { ok: r.ok, detail: describeCycle(r) };
      }),
    rollback: (type) =>
      withOfflineAgent(config, async (agent) => {
        const info = await agent.rollback(type);
        return { ok: true, detail: `${type} now at v${info.version}` };
      }),
  };
}

export default defineCommand({
  meta: {
    name: "run-repair",
    description: "Check and repair this agent's installation (RepairKit; works with the agent stopped)",
  },
  args: {
    ...agentArgs,
    "dry-run": {
      type: "boolean",
      default: false,
      description: "report what would be repaired; change nothing",
    },
  },
  async run({ args }) {
    const config = loadAgentConfig(args);
    const configFile = agentConfigFile(args);
    const dryRun = Boolean(args["dry-run"]);
    let client: Awaited<ReturnType<typeof connectIfRunning>>;
    try {
      client = await connectIfRunning(config.stateDir);
    } catch {
      // A broken control.json is one more thing to repair, not a reason to stop.
      client = undefined;
    }
    const report = client
      ? await repairOnline(client, config, { dryRun, configFile })
      : await repairOffline(config, { dryRun, configFile, actions: offlineActions(config) });
    if (args.json) printJson(report);
    else printText(renderRepair(report));
    process.exitCode = report.summary.failed > 0 ? EXIT.CONTENT : EXIT.OK;
    return report;
  },
});
