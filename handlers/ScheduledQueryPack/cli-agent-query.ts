/**
 * `agent query "SELECT …" [--json]`: an ad-hoc query on the agent's query
 * host (the running agent's, or an in-process one), under the same watchdog
 * as scheduled queries; a table for people, JSON for scripts.
 * `agent query --stats` shows the schedule's per-query telemetry instead,
 * and every sink queue's lifetime `sent` / `dropped` (read from the queue
 * directories, so it answers the same whether the agent runs or not).
 * With no ScheduledQueryPack content installed there is no query host, so
 * the command runs the query in its own watched worker and says so.
 */
import { join } from "node:path";
import { defineCommand } from "citty";
import { loadAgentConfig } from "../../core/cli/agent/session.ts";
import { printErr, printJson, printText, renderTable, UsageError } from "../../core/cli/output.ts";
import { describeError } from "../../core/errors.ts";
import { persistedSinkTotals } from "../../plugins/sinks/registry.ts";
import { DEFAULT_LIMITS, QueryRunner } from "./watchdog.ts";

/** Errors caused by the SQL the user typed, not by the agent. */
const USER_FAULTS = new Set([
  "HND_QUERY_SQL",
  "HND_QUERY_REFUSED",
  "HND_QUERY_UNKNOWN_TABLE",
  "HND_QUERY_UNKNOWN_FUNCTION",
  "HND_QUERY_BAD_ARGS",
]);

export type CallHandler = (type: string, method: string, args: unknown) => Promise<unknown>;

export interface QueryOutput {
  engine: string;
  columns: string[];
  rows: Record<string, string>[];
  rowCount: number;
  truncated: boolean;
  warnings: string[];
  stats: { wallMs: number; cpuMs: number; peakMemoryBytes: number };
  /** "agent" when the agent's query host answered, "local" for the fallback. */
  ranBy?: "agent" | "local";
}

/**
 * Ctrl-C (SIGINT) or SIGTERM while a local worker runs: kill the worker's
 * group at once and exit 130/143, instead of waiting for the query (which
 * may spin in C until the watchdog's limit).
 */
function stopOnSignal(runner: QueryRunner): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    void runner.stop().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  return () => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  };
}

async function runLocally(sql: string): Promise<QueryOutput> {
  const runner = new QueryRunner();
  const release = stopOnSignal(runner);
  try {
    const out = await runner.run(sql, DEFAULT_LIMITS);
    return {
      engine: runner.engine,
      columns: out.result.columns,
      rows: out.result.rows,
      rowCount: out.result.rows.length,
      truncated: false,
      warnings: out.result.warnings,
      stats: out.stats,
    };
  } finally {
    release();
    await runner.stop();
  }
}

type SinkTotals = ReturnType<typeof persistedSinkTotals>;

interface StatsOutput {
  engine: string;
  /** Result sinks with a queue (http, postgres, clickhouse, syslog): lifetime sent / dropped lines. */
  sinks: SinkTotals;
  /** The same for events.sinks. */
  eventSinks: SinkTotals;
  queries: {
    name: string;
    runs: number;
    lastRows: number;
    avgWallMs: number;
    errors: number;
    watchdogKills: number;
    denylistedUntil: string | null;
    nextRunAt: string | null;
  }[];
}

async function queryOnce(callHandler: CallHandler, sql: string): Promise<QueryOutput> {
  try {
    return {
      ...((await callHandler("ScheduledQueryPack", "query", { sql })) as QueryOutput),
      ranBy: "agent",
    };
  } catch (e) {
    if (describeError(e).code !== "HND_NOT_LOADED") throw e;
    printErr("note: no ScheduledQueryPack content is loaded; running the query in a local watched worker");
    return { ...(await runLocally(sql)), ranBy: "local" };
  }
}

export function makeQueryCommand(callHandler: CallHandler) {
  return defineCommand({
    meta: {
      name: "query",
      description: "Run an osquery-style SQL query on this host (or --stats for the schedule)",
    },
    args: {
      sql: { type: "positional", required: false, description: 'e.g. "SELECT pid, name FROM processes"' },
      json: { type: "boolean", default: false, description: "print the result as JSON" },
      stats: { type: "boolean", default: false, description: "show scheduled-query telemetry instead" },
    },
    async run({ args }) {
      if (args.stats) {
        const s = (await callHandler("ScheduledQueryPack", "stats", {})) as StatsOutput;
        // --state / --config come from the agent flags every handler command gains (session.ts).
        const flags = args as { state?: string; config?: string };
        const state = loadAgentConfig({ state: flags.state, config: flags.config }).stateDir;
        s.sinks = persistedSinkTotals([
          join(state, "query-results", "lake-queue"),
          join(state, "query-results", "sinks"),
        ]);
        s.eventSinks = persistedSinkTotals([join(state, "event-sinks")]);
        if (args.json) printJson(s);
        else {
          printText(
            renderTable(
              ["query", "runs", "rows", "avg ms", "errors", "kills", "denylisted until", "next run"],
              s.queries.map((q) => [
                q.name,
                q.runs,
                q.lastRows,
                q.avgWallMs,
                q.errors,
                q.watchdogKills,
                q.denylistedUntil,
                q.nextRunAt,
              ]),
            ),
          );
          const all = [...s.sinks, ...s.eventSinks.map((e) => ({ ...e, sink: `events → ${e.sink}` }))];
          if (all.length > 0)
            printText(
              renderTable(
                ["sink", "sent", "dropped"],
                all.map((x) => [x.sink, x.sent, x.dropped]),
              ),
            );
        }
        return s;
      }
      const sql = typeof args.sql === "string" ? args.sql : "";
      if (!sql.trim())
        throw new UsageError(
          "CLI_USAGE",
          'agent query needs SQL, e.g. agent query "SELECT * FROM os_version"',
        );
      let out: QueryOutput;
      try {
        out = await queryOnce(callHandler, sql);
      } catch (e) {
        // The query itself was wrong: a usage error (exit 2) whose message keeps the precise cause.
        const d = describeError(e);
        if (USER_FAULTS.has(d.code)) throw new UsageError("CLI_BAD_QUERY", `${d.code}: ${d.message}`);
        throw e;
      }
      if (args.json) printJson(out);
      else {
        printText(
          renderTable(
            out.columns,
            out.rows.map((r) => out.columns.map((c) => r[c] ?? "")),
          ),
        );
        for (const w of out.warnings) printErr(`warning: ${w}`);
        if (out.truncated) printErr(`warning: showing ${out.rows.length} of ${out.rowCount} rows`);
      }
      return out;
    },
  });
}
