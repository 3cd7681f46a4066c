/**
 * `contentctl fleet exclusions [--agent ID] [--config release.json] [--db URL] [--json]`:
 * the exclusions agents reported to the fleet service (fleet/exclusions):
 * without --agent every agent's summary, with it that agent's full list.
 * Reads the fleet database `contentctl serve --release [--db …]` uses
 * (read-only: no database there is an error, not an empty list).
 */
import { defineCommand } from "citty";
import { printJson, printText, renderTable, UsageError } from "../../core/cli/output.ts";
import { ExclusionStore } from "../exclusions/store.ts";
import { openReleaseDb } from "../open-db.ts";
import { releaseArgs, releaseConfig } from "./release-args.ts";

const exclusions = defineCommand({
  meta: {
    name: "exclusions",
    description: "Exclusions agents reported: summaries, or one agent's full list",
  },
  args: {
    ...releaseArgs,
    agent: {
      type: "string",
      valueHint: "ID",
      description: "the agent id (STATE/agent-id) whose list to show",
    },
  },
  async run({ args }) {
    const config = releaseConfig(args);
    const db = await openReleaseDb({ url: args.db, stateDir: config.paths.stateDir, mode: "read" });
    const store = new ExclusionStore(db.driver);
    try {
      if (!args.agent) {
        const agents = await store.agents();
        if (args.json) printJson({ agents });
        else
          printText(
            renderTable(
              ["TENANT", "AGENT", "COUNT", "BY SOURCE", "HASH", "LIST"],
              agents.map((a) => [
                a.tenant,
                a.agentId,
                a.count,
                Object.entries(a.bySource)
                  .map(([k, n]) => `${k} ${n}`)
                  .join(", "),
                a.hash.slice(0, 12),
                a.listHash === a.hash ? a.listAt : "pending",
              ]),
            ),
          );
        return { agents };
      }
      const a = await store.agent(args.agent);
      if (!a) throw new UsageError("CLI_USAGE", `no exclusions reported by agent ${args.agent}`);
      if (args.json) printJson(a);
      else
        printText(
          [
            `${a.agentId} (${a.tenant}): ${a.count} exclusion(s), hash ${a.hash.slice(0, 16)}…${a.stale ? " (full list pending; older list shown)" : ""}`,
            renderTable(
              ["KIND", "VALUE", "SCOPE", "SOURCE", "REASON"],
              (a.exclusions ?? []).map((e) => [e.kind, e.value, e.scope.join(","), e.source, e.reason]),
            ),
          ].join("\n"),
        );
      return a;
    } finally {
      await db.close();
    }
  },
});

export default defineCommand({
  meta: { name: "fleet", description: "What agents reported to the fleet service (exclusions)" },
  subCommands: { exclusions },
});
