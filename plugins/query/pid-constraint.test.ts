import { describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { EmbeddedEngine } from "./embedded.ts";
import { MAX_PIDS, processPids } from "./pid-constraint.ts";
import { tokenize } from "./sql.ts";
import { genProcesses } from "./tables/proc.ts";
import { ctxFor, fixtureRoot } from "./tables/testutil.ts";

const pids = (sql: string) => processPids(tokenize(sql));

describe("pid as the index column of processes", () => {
  test("a pid test every matching row must pass names the pids to produce", () => {
    expect(pids("select pid, name from processes where pid = 1")).toEqual([1]);
    expect(pids("SELECT name FROM processes WHERE 1 = pid")).toEqual([1]);
    expect(pids("select name from processes p where p.pid in (3, 1)")).toEqual([1, 3]);
    expect(pids("select name from processes as p where name = 'x' and p.pid == 7 order by pid")).toEqual([7]);
    expect(pids("select * from processes where (uid = 0) and pid = 1 and pid in (2) limit 5")).toEqual([
      1, 2,
    ]);
    expect(pids("select count(*) from processes where pid = 1 group by name")).toEqual([1]);
    const most = Array.from({ length: MAX_PIDS }, (_, i) => i + 1);
    expect(pids(`select pid from processes where pid in (${most.join(", ")})`)).toEqual(most);
  });

  test("anything that could match a row with another pid produces every process", () => {
    for (const sql of [
      "select pid from processes",
      "select pid from processes where pid = 1 or name = 'x'",
      "select pid from processes where not pid = 1",
      "select pid from processes where (pid = 1) = 0",
      "select pid from processes where pid = 1 = 0",
      "select pid from processes where pid = 1 is 0",
      "select pid from processes where max(pid = 1, 1)",
      "select pid from processes where (pid = 1)",
      "select pid from processes where pid > 1",
      "select pid from processes where pid = -1",
      "select pid from processes where pid = '1'",
      "select pid from processes where pid = 1 + 0",
      "select pid from processes where pid in (1, 2 + 1)",
      "select pid from processes where pid in (select 1)",
      "select pid from processes where case when pid = 1 then 1 end",
      "select pid from processes where uid between 0 and pid = 1",
      "select pid from processes group by pid having pid = 1",
      "select p.pid from processes p join users u on u.uid = p.uid where p.pid = 1",
      "select p.pid from processes p, users u where p.pid = 1",
      "select pid from processes where other.pid = 1",
      "with t as (select 1) select pid from processes where pid = 1",
      "select pid from processes where pid = 1 union select 2",
      "select pid from users where pid = 1",
      "select pid from processes where pid = 12345678901234567890",
      `select pid from processes where pid in (${Array.from({ length: MAX_PIDS + 1 }, (_, i) => i + 1).join(", ")})`,
    ])
      expect({ sql, pids: pids(sql) }).toEqual({ sql, pids: undefined });
  });

  test("asked for by pid, only those are read, and a thread's /proc entry is no process", () => {
    const proc = (pid: number, tgid: number, name: string) => ({
      [`proc/${pid}/stat`]: `${pid} (${name}) S 1 ${pid} ${pid} 0 -1 4194560 0 0 0 0 7 3 0 0 20 0 1 0 100 0 0\n`,
      [`proc/${pid}/status`]: `Name:\t${name}\nTgid:\t${tgid}\nPid:\t${pid}\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n`,
    });
    const f = fixtureRoot({ ...proc(1, 1, "init"), ...proc(40, 40, "agent"), ...proc(41, 40, "worker") });
    try {
      const ctx = ctxFor(f.root);
      // A fixture's readdir lists every directory (the kernel's would not list 41).
      expect(
        genProcesses(ctx)
          .map((r) => Number(r.pid))
          .sort((a, b) => a - b),
      ).toEqual([1, 40, 41]);
      expect(genProcesses({ ...ctx, pids: [40] }).map((r) => [r.pid, r.name])).toEqual([[40, "agent"]]);
      // 41 is a thread of 40 (Tgid 40); 99 does not exist.
      expect(genProcesses({ ...ctx, pids: [41, 99] })).toEqual([]);
    } finally {
      f.cleanup();
    }
  });

  test("on this machine the results are those of the same query read over every process", () => {
    const engine = new EmbeddedEngine();
    const threads = readdirSync(`/proc/${process.pid}/task`).filter((t) => t !== String(process.pid));
    const thread = threads[0] ?? "0";
    for (const cond of [
      `pid = ${process.pid}`,
      "pid = 1",
      `pid in (1, ${process.pid}, ${thread}, 4194304)`,
      `pid = ${thread}`,
      `name != '' and pid = ${process.pid}`,
    ]) {
      // Parenthesised, the same condition is not pushed down: every process is produced.
      const fast = engine.querySync(`select pid, name, parent, uid from processes where ${cond}`).rows;
      const full = engine.querySync(`select pid, name, parent, uid from processes where (${cond})`).rows;
      expect({ cond, rows: fast }).toEqual({ cond, rows: full });
    }
    expect(engine.querySync(`select pid from processes where pid = ${process.pid}`).rows).toEqual([
      { pid: String(process.pid) },
    ]);
  });
});
