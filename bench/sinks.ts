#!/usr/bin/env bun
/**
 * Result-sink throughput, every sink against the rotating file sink in the
 * same run (the baseline: local disk, no network, no store):
 *
 *   file        RotatingFileSink.write of every batch
 *   postgres    QueuedSink → PostgreSQL (one transaction per batch)
 *   clickhouse  QueuedSink → ClickHouse HTTP (JSONEachRow, gzip)
 *   syslog      QueuedSink → rsyslogd over RELP (one acknowledged message per row)
 *
 * Each network sink is timed from its first write until its queue is empty
 * (rows/s end to end, queue included), then the store is counted: rows
 * stored must equal rows sent. The stores are real servers started here
 * (plugins/sinks/testutil/servers.ts).
 *
 *   bun bench/sinks.ts [--rows 50000] [--batch 5000] [--json]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ClickHouseDestination, ClickHouseSinkSchema } from "../plugins/sinks/clickhouse.ts";
import { PostgresDestination, PostgresSinkSchema } from "../plugins/sinks/postgres.ts";
import { type Destination, QueuedSink } from "../plugins/sinks/queued-sink.ts";
import { RotatingFileSink } from "../plugins/sinks/results-file.ts";
import { SyslogDestination, SyslogSinkSchema } from "../plugins/sinks/syslog.ts";
import { startClickHouse, startPostgres, startRsyslog } from "../plugins/sinks/testutil/servers.ts";

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    rows: { type: "string", default: "50000" },
    batch: { type: "string", default: "5000" },
    json: { type: "boolean", default: false },
  },
});
const ROWS = Number(values.rows);
const BATCH = Number(values.batch);
const tmp = mkdtempSync(join(tmpdir(), "outpost-bench-sinks-"));

const line = (seq: number) =>
  JSON.stringify({
    name: "pack_bench_processes",
    hostIdentifier: "bench-host",
    calendarTime: "Thu Dec  3 18:00:00 2026 UTC",
    unixTime: 1796320800,
    epoch: 0,
    counter: 0,
    action: "added",
    columns: {
      pid: String(seq),
      name: "bun",
      cmdline: "/usr/local/bin/bun bench/sinks.ts --rows 50000",
      uid: "0",
    },
    decorations: { host_uuid: "00000000-0000-0000-0000-000000000000" },
  });
const batches = Array.from({ length: Math.ceil(ROWS / BATCH) }, (_, b) => ({
  generation: "bench",
  first: b * BATCH + 1,
  lines: Array.from({ length: Math.min(BATCH, ROWS - b * BATCH) }, (_, i) => line(b * BATCH + i + 1)),
}));

const results: Record<
  string,
  { rows: number; ms: number; rowsPerSec: number; stored: number; vsFile?: number }
> = {};

async function timeFile(): Promise<void> {
  const sink = new RotatingFileSink({ path: join(tmp, "file", "results.log"), maxBytes: 1024 * 1024 * 1024 });
  const t0 = performance.now();
  for (const b of batches) await sink.write(b);
  const ms = performance.now() - t0;
  await sink.close();
  results.file = { rows: ROWS, ms, rowsPerSec: ROWS / (ms / 1000), stored: sink.stats().acceptedLines };
}

async function timeQueued(name: string, dest: Destination, count: () => Promise<number>): Promise<void> {
  const sink = new QueuedSink(dest, {
    dir: join(tmp, `q-${name}`),
    minBackoffMs: 50,
    maxBackoffMs: 500,
  }).start();
  const t0 = performance.now();
  for (const b of batches) await sink.write(b);
  if (!(await sink.flush(600_000))) throw new Error(`${name}: queue did not drain`);
  const ms = performance.now() - t0;
  await sink.close();
  results[name] = { rows: ROWS, ms, rowsPerSec: ROWS / (ms / 1000), stored: await count() };
}

const [pg, ch, rs] = await Promise.all([startPostgres(), startClickHouse(), startRsyslog()]);
try {
  await timeFile();
  await timeQueued(
    "postgres",
    new PostgresDestination(PostgresSinkSchema.parse({ url: pg.url, table: "bench" })),
    async () => Number((await pg.query("SELECT count(*)::int AS n FROM bench"))[0]!.n),
  );
  await timeQueued(
    "clickhouse",
    new ClickHouseDestination(
      ClickHouseSinkSchema.parse({ url: ch.url, database: "bench", table: "results" }),
    ),
    async () => Number((await ch.query("SELECT count() FROM bench.results FINAL")).trim()),
  );
  await timeQueued(
    "syslog",
    new SyslogDestination(SyslogSinkSchema.parse({ host: "127.0.0.1", port: rs.port })),
    async () => {
      // RELP acknowledged every row; omfile may still be writing the last ones.
      const end = Date.now() + 30_000;
      while (rs.lines().length < ROWS && Date.now() < end) await Bun.sleep(50);
      return rs.lines().length;
    },
  );
} finally {
  pg.destroy();
  await ch.destroy();
  await rs.destroy();
  rmSync(tmp, { recursive: true, force: true });
}

for (const r of Object.values(results)) r.vsFile = r.rowsPerSec / results.file!.rowsPerSec;
if (values.json) console.log(JSON.stringify({ rows: ROWS, batch: BATCH, sinks: results }, null, 2));
else {
  console.log(`sink throughput, ${ROWS} rows in batches of ${BATCH} (baseline: file sink, same run)`);
  for (const [name, r] of Object.entries(results))
    console.log(
      `  ${name.padEnd(11)} ${Math.round(r.rowsPerSec).toString().padStart(9)} rows/s  ${r.ms.toFixed(0).padStart(7)} ms  stored ${r.stored}/${r.rows}  ×${r.vsFile!.toFixed(3)} of file`,
    );
}
const bad = Object.entries(results).filter(([, r]) => r.stored !== r.rows);
if (bad.length) {
  console.error(`rows lost or duplicated: ${bad.map(([n, r]) => `${n} ${r.stored}/${r.rows}`).join(", ")}`);
  process.exit(1);
}
