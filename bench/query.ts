#!/usr/bin/env bun
/**
 * Scheduled-query benchmarks, each against a baseline measured in the same run:
 *
 *  1. latency of `SELECT pid, name, cmdline FROM processes` through the
 *     watched worker (the real path) and in-process, vs `ps -eo pid,comm,args`;
 *  2. scheduler overhead: 100 scheduled queries run by the scheduler (diff,
 *     outbox, stats) vs the same 100 queries run back to back on the worker;
 *  3. time from a runaway query's start to its kill, with osquery's default
 *     limits (200 MB; 10 % CPU for 12 s) and a 2 s wall limit, vs the limit;
 *  4. sink throughput (rows/s) from the outbox to the data-lake receiver with
 *     the receiver down for a while in the middle, and rows lost (must be 0),
 *     vs POSTing the same batches straight to a receiver.
 *
 *   bun bench/query.ts [--runs 50] [--rows 200000] [--skip-cpu] [--json]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { createCapabilities } from "../core/handler/capabilities.ts";
import { type ContentHandler, viewOverBytes } from "../core/handler/contract.ts";
import { MetricsRegistry } from "../core/metrics.ts";
import { createScheduledQueryPackHandler, type Loaded } from "../handlers/ScheduledQueryPack/index.ts";
import { ResultsService } from "../handlers/ScheduledQueryPack/service.ts";
import { defaultSettings } from "../handlers/ScheduledQueryPack/settings.ts";
import { DEFAULT_LIMITS, QueryRunner, type WatchdogKill } from "../handlers/ScheduledQueryPack/watchdog.ts";
import { EmbeddedEngine } from "../plugins/query/embedded.ts";
import { startLakeReceiver } from "../plugins/sinks/lake-receiver.ts";
import { RotatingFileSink } from "../plugins/sinks/results-file.ts";
import { HttpLakeSink } from "../plugins/sinks/results-http.ts";

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    runs: { type: "string", default: "50" },
    rows: { type: "string", default: "200000" },
    "skip-cpu": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const RUNS = Number(values.runs);
const ROWS = Number(values.rows);
const results: Record<string, unknown> = {};
const tmp = mkdtempSync(join(tmpdir(), "outpost-bench-query-"));
const say = (s: string) => {
  if (!values.json) console.log(s);
};

function summary(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { median: at(0.5), p95: at(0.95), min: s[0]! };
}
const f = (n: number, d = 2) => n.toFixed(d);

// ---- 1. processes latency vs ps ------------------------------------------------------------
{
  const SQL = "SELECT pid, name, cmdline FROM processes";
  const runner = new QueryRunner();
  await runner.run(SQL, DEFAULT_LIMITS);
  const worker: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    await runner.run(SQL, DEFAULT_LIMITS);
    worker.push(performance.now() - t);
  }
  await runner.stop();
  const engine = new EmbeddedEngine();
  const inproc: number[] = [];
  let rows = 0;
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    rows = engine.querySync(SQL).rows.length;
    inproc.push(performance.now() - t);
  }
  const ps: number[] = [];
  let psRows = 0;
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    const r = Bun.spawnSync(["ps", "-eo", "pid,comm,args"], { stdout: "pipe" });
    psRows = r.stdout.toString().trim().split("\n").length - 1;
    ps.push(performance.now() - t);
  }
  const w = summary(worker);
  const e = summary(inproc);
  const p = summary(ps);
  results.processes = {
    rows,
    psRows,
    workerMs: w,
    inProcessMs: e,
    psMs: p,
    ratioWorkerVsPs: w.median / p.median,
  };
  say("1. SELECT pid, name, cmdline FROM processes  vs  ps -eo pid,comm,args");
  say(`   rows: ${rows} (ps: ${psRows}), ${RUNS} runs each, ms median / p95`);
  say(`   watched worker (IPC + tables + SQLite) ${f(w.median)} / ${f(w.p95)}`);
  say(`   engine in-process                     ${f(e.median)} / ${f(e.p95)}`);
  say(`   ps (fork + exec + /proc walk)         ${f(p.median)} / ${f(p.p95)}`);
  say(`   ratio worker/ps ${f(w.median / p.median)}  in-process/ps ${f(e.median / p.median)}`);
}

// ---- 2. scheduler overhead, 100 queries ---------------------------------------------------
{
  const TABLES = [
    "SELECT * FROM uptime",
    "SELECT name, version FROM os_version",
    "SELECT username, uid, shell FROM users",
    "SELECT groupname, gid FROM groups",
    "SELECT pid, name FROM processes",
    "SELECT * FROM kernel_info",
    "SELECT device, path, type FROM mounts",
    "SELECT * FROM routes",
    "SELECT * FROM interface_addresses",
    "SELECT * FROM crontab",
  ];
  const queries: Record<string, { query: string; interval: number }> = {};
  for (let i = 0; i < 100; i++)
    queries[`q${i}`] = { query: `${TABLES[i % TABLES.length]} /* ${i} */`, interval: 60 };
  let clock = Date.parse("2025-01-01T00:00:00Z");
  const handler = createScheduledQueryPackHandler({
    now: () => clock,
    timers: { setTimeout: () => 0, clearTimeout: () => {} },
  }) as ContentHandler<Loaded>;
  const files = { "packs/bench.conf": JSON.stringify({ queries }) };
  const view = viewOverBytes({
    type: "ScheduledQueryPack",
    version: 1,
    signingTime: new Date(0).toISOString(),
    files: Object.keys(files),
    read: (p: string) => new TextEncoder().encode(files[p as keyof typeof files]),
    readText: (p: string) => files[p as keyof typeof files],
  });
  const caps = createCapabilities(handler.manifest, {
    log: { info: () => {}, warn: () => {} },
    emit: () => {},
    workDir: join(tmp, "sched"),
  });
  const l = await handler.load(view, caps);
  const ROUNDS = 5;
  const scheduled: number[] = [];
  const cpu0 = process.cpuUsage();
  let workerMs = 0;
  for (let r = 0; r < ROUNDS; r++) {
    clock = Math.max(...l.scheduler.queries.map((e) => e.nextDue));
    const t = performance.now();
    const reports = await l.scheduler.runDue();
    scheduled.push(performance.now() - t);
    workerMs += reports.reduce((n, x) => n + (x.wallMs ?? 0), 0);
    if (reports.length !== 100 || reports.some((x) => x.status !== "ok"))
      throw new Error("scheduler round incomplete");
  }
  const schedCpu = process.cpuUsage(cpu0);
  await handler.unload!(l);
  const runner = new QueryRunner();
  const direct: number[] = [];
  const cpu1 = process.cpuUsage();
  for (let r = 0; r < ROUNDS; r++) {
    const t = performance.now();
    for (const q of Object.values(queries)) await runner.run(q.query, DEFAULT_LIMITS);
    direct.push(performance.now() - t);
  }
  const directCpu = process.cpuUsage(cpu1);
  await runner.stop();
  const s = summary(scheduled);
  const d = summary(direct);
  const perQueryOverheadMs = (s.median - d.median) / 100;
  const hostCpuPerQueryMs = (schedCpu.user + schedCpu.system) / 1000 / (ROUNDS * 100);
  const directCpuPerQueryMs = (directCpu.user + directCpu.system) / 1000 / (ROUNDS * 100);
  results.scheduler = {
    queries: 100,
    rounds: ROUNDS,
    scheduledRoundMs: s,
    directRoundMs: d,
    perQueryOverheadMs,
    hostCpuPerQueryMs,
    directCpuPerQueryMs,
    ratio: s.median / d.median,
    workerQueryMsPerRound: workerMs / ROUNDS,
  };
  say("\n2. Scheduler overhead: 100 scheduled queries per round (10 table mixes), 5 rounds");
  say(`   scheduler round (run + diff + outbox fsync + stats)  median ${f(s.median, 1)} ms`);
  say(`   same 100 queries straight on the worker             median ${f(d.median, 1)} ms`);
  say(
    `   overhead ${f(perQueryOverheadMs)} ms per query; host CPU ${f(hostCpuPerQueryMs)} ms/query vs ${f(directCpuPerQueryMs)} ms direct`,
  );
  say(`   ratio scheduled/direct ${f(s.median / d.median)}`);
}

// ---- 3. runaway query: start → kill ----------------------------------------------------------
{
  const SPIN = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
  const GROW =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT length(group_concat(hex(randomblob(512)))) FROM c";
  const runner = new QueryRunner();
  await runner.run("select 1", DEFAULT_LIMITS);
  const timeKill = async (sql: string, limits = DEFAULT_LIMITS) => {
    const t = performance.now();
    try {
      await runner.run(sql, limits);
    } catch (e) {
      return { ms: performance.now() - t, kill: (e as WatchdogKill).kill };
    }
    throw new Error("runaway query was not killed");
  };
  const mem = await timeKill(GROW);
  const wall = await timeKill(SPIN, { ...DEFAULT_LIMITS, wallSeconds: 2 });
  const cpu = values["skip-cpu"] ? undefined : await timeKill(SPIN);
  await runner.stop();
  results.runaway = {
    memory: { killMs: mem.ms, measured: mem.kill.measured, limit: mem.kill.limit },
    wall: { killMs: wall.ms, limitMs: 2000, ratio: wall.ms / 2000 },
    ...(cpu
      ? {
          cpu: {
            killMs: cpu.ms,
            limitMs: DEFAULT_LIMITS.latencySeconds * 1000,
            ratio: cpu.ms / (DEFAULT_LIMITS.latencySeconds * 1000),
          },
        }
      : {}),
  };
  say("\n3. Runaway query, start → kill (osquery default limits)");
  say(`   memory (limit 200 MB growth)          killed after ${f(mem.ms, 0)} ms at ${mem.kill.measured}`);
  say(
    `   wall (limit 2 s)                      killed after ${f(wall.ms, 0)} ms, ratio to limit ${f(wall.ms / 2000, 3)}`,
  );
  if (cpu)
    say(
      `   cpu (10 % of all CPUs for 12 s)       killed after ${f(cpu.ms, 0)} ms, ratio to limit ${f(cpu.ms / 12000, 3)}`,
    );
}

// ---- 4. sink throughput with an outage ----------------------------------------------------------
{
  const line = (i: number) =>
    JSON.stringify({
      name: "pack_bench_processes",
      hostIdentifier: "bench-host",
      calendarTime: "Mon Aug  5 12:10:57 2024 UTC",
      unixTime: 1722859857,
      epoch: 0,
      counter: 1,
      numerics: false,
      columns: {
        pid: String(i),
        name: `proc-${i % 977}`,
        cmdline: `/usr/bin/proc-${i % 977} --flag ${i}`,
        uid: "0",
      },
      action: "added",
    });
  const BATCH = 5000;

  // Baseline: the same batches POSTed directly, no outbox, no queue, no outage.
  const base = await startLakeReceiver({ dir: join(tmp, "lake-base") });
  const tb = performance.now();
  for (let first = 1; first <= ROWS; first += BATCH) {
    const lines = Array.from({ length: Math.min(BATCH, ROWS - first + 1) }, (_, i) => line(first + i));
    const res = await fetch(base.url, {
      method: "POST",
      headers: { "content-encoding": "gzip", "idempotency-key": `base:${first}` },
      body: gzipSync(Buffer.from(`${lines.join("\n")}\n`)),
    });
    if (!res.ok) throw new Error(`baseline POST ${res.status}`);
  }
  const baseMs = performance.now() - tb;
  await base.stop();

  // The pipeline: handler outbox → service → file + HTTP sinks → receiver, with an outage.
  const handler = createScheduledQueryPackHandler({
    timers: { setTimeout: () => 0, clearTimeout: () => {} },
  }) as ContentHandler<Loaded>;
  const files = { "packs/p.conf": JSON.stringify({ queries: {} }) };
  const view = viewOverBytes({
    type: "ScheduledQueryPack",
    version: 1,
    signingTime: new Date(0).toISOString(),
    files: Object.keys(files),
    read: (p: string) => new TextEncoder().encode(files[p as keyof typeof files]),
    readText: (p: string) => files[p as keyof typeof files],
  });
  const caps = createCapabilities(handler.manifest, {
    log: { info: () => {}, warn: () => {} },
    emit: () => {},
    workDir: join(tmp, "pipe"),
  });
  const l = await handler.load(view, caps);
  for (let first = 1; first <= ROWS; first += BATCH) {
    l.host.outbox.append(
      Array.from({ length: Math.min(BATCH, ROWS - first + 1) }, (_, i) => line(first + i)),
    );
  }
  let lake = await startLakeReceiver({ dir: join(tmp, "lake") });
  const port = lake.port;
  const http = new HttpLakeSink({
    url: lake.url,
    dir: join(tmp, "queue"),
    minBackoffMs: 50,
    maxBackoffMs: 400,
  }).start();
  const service = new ResultsService({
    api: { call: async (_t, m, a) => handler.call!(l, m, a) },
    settings: defaultSettings(),
    sinks: [new RotatingFileSink({ path: join(tmp, "results.log"), maxBytes: 64 * 1024 * 1024 }), http],
    batchLines: BATCH,
    flushMs: 50,
    metrics: new MetricsRegistry(),
  });
  const OUTAGE_MS = 1500;
  const t0 = performance.now();
  service.start();
  let outageAt = 0;
  while (lake.stats().lines < ROWS / 2) await Bun.sleep(5);
  outageAt = performance.now() - t0;
  await lake.stop();
  await Bun.sleep(OUTAGE_MS);
  lake = await startLakeReceiver({ dir: join(tmp, "lake"), port });
  http.retryNow();
  while (lake.stats().lines < ROWS) await Bun.sleep(5);
  const totalMs = performance.now() - t0;
  await service.stop();
  await handler.unload!(l);
  const seen = new Set<string>();
  let dup = 0;
  for (const x of lake.lines()) {
    const pid = (JSON.parse(x) as { columns: { pid: string } }).columns.pid;
    if (seen.has(pid)) dup++;
    seen.add(pid);
  }
  await lake.stop();
  const lost = ROWS - seen.size;
  const rate = ROWS / (totalMs / 1000);
  const rateNoOutage = ROWS / ((totalMs - OUTAGE_MS) / 1000);
  const baseRate = ROWS / (baseMs / 1000);
  results.sink = {
    rows: ROWS,
    outageMs: OUTAGE_MS,
    outageAtMs: outageAt,
    totalMs,
    rowsPerSecond: rate,
    rowsPerSecondExcludingOutage: rateNoOutage,
    baselineRowsPerSecond: baseRate,
    ratio: rateNoOutage / baseRate,
    lost,
    duplicates: dup,
    httpFailures: http.stats().failures,
  };
  say(`\n4. Results pipeline → data lake: ${ROWS} rows, receiver down ${OUTAGE_MS} ms in the middle`);
  say(
    `   pipeline (outbox → pull/ack → file + HTTP queue → lake)  ${f(rate, 0)} rows/s overall, ${f(rateNoOutage, 0)} rows/s excluding the outage`,
  );
  say(`   baseline: same gzip batches POSTed straight               ${f(baseRate, 0)} rows/s`);
  say(
    `   ratio (excluding outage) ${f(rateNoOutage / baseRate)}; failed requests during the outage: ${http.stats().failures}`,
  );
  say(`   rows lost: ${lost}, duplicates: ${dup}`);
  if (lost !== 0 || dup !== 0) process.exitCode = 1;
}

rmSync(tmp, { recursive: true, force: true });
if (values.json) console.log(JSON.stringify(results, null, 2));
