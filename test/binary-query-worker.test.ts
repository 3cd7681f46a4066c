/**
 * The compiled agent's scheduled-query worker (`agent query-worker`, started by the query host's
 * watchdog) answers queries through its fast path in bin/agent.ts, which skips the command tree:
 * the same runner the query host uses, pointed at the real executable.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { DEFAULT_LIMITS, QueryRunner } from "../handlers/ScheduledQueryPack/watchdog.ts";
import { compiledBinaries } from "./fixtures/compiled.ts";

let runner: QueryRunner | undefined;

beforeAll(async () => {
  runner = new QueryRunner({ command: [(await compiledBinaries()).agent, "query-worker"] });
}, 300_000);

afterAll(() => runner?.stop());

test("the compiled query worker runs a query against the live system and reports SQL errors", async () => {
  const out = await runner!.run(`SELECT pid, name FROM processes WHERE pid = ${process.pid}`, DEFAULT_LIMITS);
  expect(out.result.columns).toEqual(["pid", "name"]);
  expect(out.result.rows).toHaveLength(1);
  expect(runner!.workerPid).not.toBe(process.pid);
  const pid = runner!.workerPid;
  await expect(runner!.run("select * from launchd", DEFAULT_LIMITS)).rejects.toMatchObject({
    code: "HND_QUERY_UNKNOWN_TABLE",
  });
  expect(runner!.workerPid).toBe(pid!);
}, 60_000);
