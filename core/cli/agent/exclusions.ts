/**
 * `agent exclusions [--json]`: every exclusion the agent honours, with its
 * source (an APPFEED or USERAPPFEED rule, or local config), its scopes,
 * the ones refused, and the producers whose rules are held inert (with the
 * code that says why, docs/exclusions.md). Read from the state dir: the
 * running agent persists its set on every change, so this needs no agent.
 */
import { defineCommand } from "citty";
import { protectedPaths } from "../../agent/protected-paths.ts";
import { ExclusionService } from "../../exclusions/service.ts";
import { printJson, printText, renderTable } from "../output.ts";
import { agentArgs, loadAgentConfig } from "./session.ts";

export default defineCommand({
  meta: {
    name: "exclusions",
    description: "List every exclusion (path, process, sha256, signer) with its scopes and source",
  },
  args: agentArgs,
  run({ args }) {
    const config = loadAgentConfig(args);
    const service = new ExclusionService({
      stateDir: config.stateDir,
      config: config.exclusions,
      protectedPaths: protectedPaths(config.stateDir),
      readOnly: true,
    });
    const out = {
      summary: service.summary(),
      exclusions: service.list(),
      refused: service.refused(),
      held: service.held(),
      ...(service.loadProblem ? { problem: service.loadProblem } : {}),
    };
    if (args.json) {
      printJson(out);
      return out;
    }
    const s = out.summary;
    const lines = [
      `${s.count} exclusion(s) (${
        Object.entries(s.bySource)
          .map(([k, n]) => `${k} ${n}`)
          .join(", ") || "none"
      }); hash ${s.hash.slice(0, 16)}…`,
      renderTable(
        ["KIND", "VALUE", "SCOPE", "SOURCE", "REASON"],
        out.exclusions.map((e) => [e.kind, e.value, e.scope.join(","), e.source, e.reason]),
      ),
    ];
    if (out.refused.length > 0) {
      lines.push(`refused (${out.refused.length}):`);
      for (const r of out.refused) lines.push(`  ${r.source}: ${r.rule}: ${r.reason}`);
    }
    for (const [producer, h] of Object.entries(out.held)) {
      lines.push(`${producer} held, its rules do not run: ${h.code}: ${h.message}`);
    }
    if (out.problem) lines.push(`problem: ${out.problem}`);
    printText(lines.join("\n"));
    return out;
  },
});
