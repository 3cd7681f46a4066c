/** time against date(1); osquery_info and osquery_schedule through the engine. */
import { describe, expect, test } from "bun:test";
import { EmbeddedEngine } from "../embedded.ts";
import { OSQUERY_COMPAT_VERSION, timeRow } from "./osquery.ts";
import { tool } from "./testutil.ts";

describe("introspection tables", () => {
  test("time is UTC and agrees with date -u", () => {
    const before = Number(tool(["date", "-u", "+%s"]).trim());
    const row = new EmbeddedEngine().querySync("select unix_time, timezone, iso_8601 from time").rows[0]!;
    const after = Number(tool(["date", "-u", "+%s"]).trim());
    expect(Number(row.unix_time)).toBeGreaterThanOrEqual(before);
    expect(Number(row.unix_time)).toBeLessThanOrEqual(after);
    expect(row.timezone).toBe("UTC");
    expect(row.iso_8601).toBe(new Date(Number(row.unix_time) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"));
    expect(timeRow(new Date(Date.UTC(2024, 1, 3, 4, 5, 6)))).toMatchObject({
      weekday: "Saturday",
      timestamp: "Sat Feb  3 04:05:06 2024 UTC",
      datetime: "2024-02-03T04:05:06Z",
    });
  });

  test("osquery_info is this process and joins processes, as the osquery-monitoring pack does", () => {
    const r = new EmbeddedEngine().querySync(
      "select i.pid, i.version, p.name from osquery_info i, processes p where p.pid = i.pid",
    );
    expect(r.rows).toEqual([
      { pid: String(process.pid), version: OSQUERY_COMPAT_VERSION, name: expect.any(String) },
    ]);
  });

  test("osquery_schedule shows what the engine's host supplies; nothing otherwise", () => {
    const schedule = [{ name: "pack_a_q", query: "select 1", interval: 60, executions: 3, denylisted: 0 }];
    const withStats = new EmbeddedEngine({ introspection: () => ({ schedule }) });
    expect(withStats.querySync("select name, executions from osquery_schedule").rows).toEqual([
      { name: "pack_a_q", executions: "3" },
    ]);
    expect(new EmbeddedEngine().querySync("select * from osquery_schedule").rows).toEqual([]);
    expect(new EmbeddedEngine().querySync("select * from osquery_events").rows).toEqual([]);
  });
});
