/**
 * The watchdog against real runaway queries in a real worker process:
 * SQLite spinning in C (CPU), growing a string (memory), running too long
 * (wall), and the worker dying under a query. Limits are scaled down so the
 * suite stays fast; the production defaults are osquery's.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, readlinkSync } from "node:fs";
import { DEFAULT_LIMITS, QueryRunner, type WatchdogKill, type WatchdogLimits } from "./watchdog.ts";

const SPIN = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
const GROW =
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT length(group_concat(hex(randomblob(512)))) FROM c";

const relaxed: WatchdogLimits = { memoryMb: 200, cpuPercent: 100, latencySeconds: 60, wallSeconds: 60 };
let onSent: ((pid: number) => void) | undefined;
const runner = new QueryRunner({ checkMs: 50, cpuWindowMs: 200, onQuerySent: (pid) => onSent?.(pid) });
afterAll(() => runner.stop());

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function killOf(p: Promise<unknown>): Promise<WatchdogKill> {
  try {
    await p;
  } catch (e) {
    return e as WatchdogKill;
  }
  throw new Error("the query was not killed");
}

describe("QueryRunner", () => {
  test("runs a query in a worker process and measures it", async () => {
    const out = await runner.run(
      `SELECT pid, name FROM processes WHERE pid = ${process.pid}`,
      DEFAULT_LIMITS,
    );
    expect(out.result.columns).toEqual(["pid", "name"]);
    expect(out.result.rows).toHaveLength(1);
    expect(out.stats.wallMs).toBeGreaterThan(0);
    expect(runner.workerPid).toBeGreaterThan(0);
    expect(runner.workerPid).not.toBe(process.pid);
  });

  test("SQL errors come back as errors, and the worker stays", async () => {
    const pid = runner.workerPid;
    const e = await killOf(runner.run("select * from launchd", DEFAULT_LIMITS));
    expect(e.code).toBe("HND_QUERY_UNKNOWN_TABLE");
    expect(runner.workerPid).toBe(pid!);
  });

  test("a query that spins in SQLite is killed after sustained CPU, and the next query gets a new worker", async () => {
    const before = runner.counters.starts;
    const oldPid = runner.workerPid;
    // 1 % of the CPUs for 0.4 s: a spinning worker exceeds that even on a loaded machine.
    const e = await killOf(runner.run(SPIN, { ...relaxed, cpuPercent: 1, latencySeconds: 0.4 }));
    expect(e.code).toBe("HND_QUERY_WATCHDOG");
    expect(e.kill.reason).toBe("cpu");
    expect(e.kill.stats.wallMs).toBeGreaterThanOrEqual(400);
    expect(e.kill.stats.cpuMs).toBeGreaterThan(0);
    const next = await runner.run("select 1 as one", DEFAULT_LIMITS);
    expect(next.result.rows).toEqual([{ one: "1" }]);
    expect(runner.counters.starts).toBe(before + 1);
    expect(runner.workerPid).not.toBe(oldPid!);
  });

  test("a query that grows memory is killed at the memory limit", async () => {
    const e = await killOf(runner.run(GROW, { ...relaxed, memoryMb: 40 }));
    expect(e.kill.reason).toBe("memory");
    expect(e.kill.stats.peakMemoryBytes).toBeGreaterThan(40 * 1024 * 1024);
    expect(e.message).toContain("memory limit 40 MB exceeded");
  });

  test("a query that runs too long is killed at the wall-clock limit", async () => {
    const started = performance.now();
    const e = await killOf(runner.run(SPIN, { ...relaxed, wallSeconds: 0.4 }));
    expect(e.kill.reason).toBe("wall");
    expect(performance.now() - started).toBeGreaterThanOrEqual(400);
  });

  test("a short CPU burst is not a runaway", async () => {
    const burst =
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 2000000) SELECT count(*) AS n FROM c";
    const out = await runner.run(burst, { ...relaxed, cpuPercent: 10, latencySeconds: 5 });
    expect(out.result.rows).toEqual([{ n: "2000000" }]);
  });

  test("a worker that dies under a query is reported as a crash", async () => {
    const sent = new Promise<number>((resolve) => {
      onSent = resolve;
    });
    const running = runner.run(SPIN, relaxed);
    // Killed from outside once the worker has the query.
    process.kill(await sent, "SIGKILL");
    onSent = undefined;
    const e = await killOf(running);
    expect(e.code).toBe("HND_QUERY_WATCHDOG");
    expect(e.kill.reason).toBe("crash");
    expect((await runner.run("select 2 as two", DEFAULT_LIMITS)).result.rows).toEqual([{ two: "2" }]);
  });

  test("queries queue behind each other (one at a time)", async () => {
    const results = await Promise.all([1, 2, 3].map((n) => runner.run(`select ${n} as n`, DEFAULT_LIMITS)));
    expect(results.map((r) => r.result.rows[0]!.n)).toEqual(["1", "2", "3"]);
    expect(runner.depth).toBe(0);
  });

  test("a worker that cannot be started is a clear HND_QUERY_WORKER error", async () => {
    const r = new QueryRunner({ command: ["/nonexistent/outpost-agent", "query-worker"] });
    const e = await killOf(r.run("select 1", DEFAULT_LIMITS));
    expect(e.code).toBe("HND_QUERY_WORKER");
    expect(e.message).toContain("cannot start the query worker /nonexistent/outpost-agent");
    await r.stop();
  });

  test("the worker talks over plain pipes: no Bun IPC channel, and its fd 1 is a second stderr", async () => {
    await runner.run("select 1", DEFAULT_LIMITS);
    const pid = runner.workerPid!;
    // Bun's IPC channel woke an idle parent and an idle worker once a second each (issue 21).
    const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    expect(environ.filter((v) => v.startsWith("NODE_CHANNEL_FD="))).toEqual([]);
    // Whatever the engine prints lands beside its errors, never inside the answer stream.
    expect(readlinkSync(`/proc/${pid}/fd/1`)).toBe(readlinkSync(`/proc/${pid}/fd/2`));
  });

  test("a worker whose answer stream is not framed is killed at once, not waited for", async () => {
    const r = new QueryRunner({
      command: ["sh", "-c", "echo this is not a frame; exec sleep 60"],
      startTimeoutMs: 60_000,
    });
    const started = performance.now();
    const e = await killOf(r.run("select 1", DEFAULT_LIMITS));
    expect(e.code).toBe("HND_QUERY_WORKER");
    expect(e.message).toContain("exited during start-up");
    expect(e.message).toContain("SIGKILL");
    expect(performance.now() - started).toBeLessThan(30_000);
    await r.stop();
  });

  test("an idle worker is retired and the next query starts a new one; not a crash, not a kill", async () => {
    const r = new QueryRunner({ checkMs: 50, idleRetireMs: 300 });
    try {
      await r.run("select 1 as one", DEFAULT_LIMITS);
      const first = r.workerPid!;
      expect(first).toBeGreaterThan(0);
      // Busy (a query every 100 ms for 1 s, three retire periods): the same worker throughout.
      const busyUntil = Date.now() + 1000;
      while (Date.now() < busyUntil) {
        await r.run("select 2", DEFAULT_LIMITS);
        expect(r.workerPid).toBe(first);
        await Bun.sleep(100);
      }
      // Idle: retired, and the process is gone.
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && (r.workerPid !== undefined || processAlive(first))) await Bun.sleep(20);
      expect(r.workerPid).toBeUndefined();
      expect(processAlive(first)).toBe(false);
      const next = await r.run("select 3 as three", DEFAULT_LIMITS);
      expect(next.result.rows).toEqual([{ three: "3" }]);
      expect(r.workerPid).not.toBe(first);
      expect(r.counters).toMatchObject({ starts: 2, retired: 1, kills: 0, crashes: 0 });
    } finally {
      await r.stop();
    }
  });

  test("stop kills the worker; a stopped runner refuses work", async () => {
    let started!: () => void;
    const workerUp = new Promise<void>((resolve) => {
      started = resolve;
    });
    const r = new QueryRunner({ checkMs: 50, onWorkerStart: () => started() });
    const running = r.run(SPIN, relaxed);
    await workerUp;
    await r.stop();
    const e = await killOf(running);
    expect(e.code).toBe("HND_QUERY_WORKER");
    expect((await killOf(r.run("select 1", DEFAULT_LIMITS))).code).toBe("HND_QUERY_WORKER");
  });
});
