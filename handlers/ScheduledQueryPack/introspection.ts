/**
 * osquery_schedule rows from the scheduler's own statistics, sent to the
 * worker with a query that reads that table. Columns Outpost does not
 * measure separately (system vs user CPU, average and last memory, output
 * bytes) are NULL rather than invented; user_time carries all CPU time.
 */
import type { Row } from "../../plugins/query/tables/context.ts";
import type { QueryHost } from "./host.ts";

export function scheduleRows(host: Pick<QueryHost, "stats" | "denylist">): Row[] {
  return [...host.stats.values()].map((s) => ({
    name: s.name,
    query: s.query,
    interval: s.interval,
    executions: s.runs,
    last_executed: s.lastRunAt ? Math.floor(Date.parse(s.lastRunAt) / 1000) : 0,
    denylisted: host.denylist.get(s.name) ? 1 : 0,
    output_size: null,
    wall_time: Math.floor(s.wallMsTotal / 1000),
    wall_time_ms: Math.round(s.wallMsTotal),
    last_wall_time_ms: Math.round(s.lastWallMs),
    user_time: Math.round(s.cpuMsTotal),
    last_user_time: null,
    system_time: null,
    last_system_time: null,
    average_memory: null,
    last_memory: null,
  }));
}
