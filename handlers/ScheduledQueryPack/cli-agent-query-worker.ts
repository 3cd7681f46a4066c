/**
 * `agent query-worker` (hidden): the query worker inside the compiled
 * agent, started by the query host's watchdog over a pair of pipes
 * (handlers/ScheduledQueryPack/watchdog.ts). Not for people: without those pipes it
 * exits at once.
 */
import { defineCommand } from "citty";
import { runWorker } from "./worker.ts";

export default defineCommand({
  meta: { name: "query-worker", description: "internal: run queries for the query host", hidden: true },
  async run() {
    await runWorker();
  },
});
