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
 * stored must equal rows sent. A second pass per sink stops the server
 * after half the batches, writes the rest while it is down, restarts it
 * after `--outage-ms` and counts again: rows stored = rows sent, no
 * duplicates (ClickHouse counted without FINAL: stored once at insert
 * time). The stores are real servers started here
 * (plugins/sinks/testutil/servers.ts).
 *
 * By default the sinks retry fast (50-500 ms) and are told when the store
 * is back (`retryNow`), to time the pipeline. `--default-backoff` keeps the
 * agent's own backoff (1 s doubling to 300 s, full jitter) and tells the
 * sink nothing: what an operator sees after a long outage, including the
 * wait for the next attempt ("catch-up" = store back → queue empty).
 *
 *   bun bench/sinks.ts [--rows 50000] [--batch 5000] [--outage-ms 2000] [--default-backoff] [--json]
 *   bun bench/sinks.ts --outage-ms 180000 --default-backoff    # a 3-minute outage per sink
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
    "outage-ms": { type: "string", default: "2000" },
    "default-backoff": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const ROWS = Number(values.rows);
const BATCH = Number(values.batch);
const OUTAGE_MS = Number(values["outage-ms"]);
const DEFAULT_BACKOFF = values["default-backoff"];
/** The agent's own backoff (QueuedSink defaults), or a fast one for timing the pipeline. */
const BACKOFF = DEFAULT_BACKOFF ? {} : { minBackoffMs: 50, maxBackoffMs: 500 };
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
  {
    rows: number;
    ms: number;
    rowsPerSec: number;
    stored: number;
    vsFile?: number;
    /** The second pass, with the server stopped and restarted in the middle. */
    outage?: {
      ms: number;
      /** From the store answering again until the queue was empty. */
      catchUpMs: number;
      /** How long the store was really down (stop → answering again, restart time included). */
      downMs: number;
      stored: number;
      distinct: number;
      retried: number;
    };
  }
> = {};

async function timeFile(): Promise<void> {
  const sink = new RotatingFileSink({ path: join(tmp, "file", "results.log"), maxBytes: 1024 * 1024 * 1024 });
  const t0 = performance.now();
  for (const b of batches) await sink.write(b);
  const ms = performance.now() - t0;
  await sink.close();
  results.file = { rows: ROWS, ms, rowsPerSec: ROWS / (ms / 1000), stored: sink.stats().acceptedLines };
}

interface Store {
  stop(): Promise<void> | void;
  start(): Promise<void>;
  /** Rows stored for a generation, and how many distinct (batch key, seq) pairs. */
  count(generation: string): Promise<{ stored: number; distinct: number }>;
}

async function timeQueued(name: string, dest: () => Destination, store: Store): Promise<void> {
  const sink = new QueuedSink(dest(), {
    dir: join(tmp, `q-${name}`),
    minBackoffMs: 50,
    maxBackoffMs: 500,
  }).start();
  // (The throughput pass always retries fast: the store is up.)
  const t0 = performance.now();
  for (const b of batches) await sink.write(b);
  if (!(await sink.flush(600_000))) throw new Error(`${name}: queue did not drain`);
  const ms = performance.now() - t0;
  await sink.close();
  results[name] = {
    rows: ROWS,
    ms,
    rowsPerSec: ROWS / (ms / 1000),
    stored: (await store.count("bench")).stored,
  };

  // The same rows again under a new generation, with the server down in the middle.
  const again = batches.map((b) => ({ ...b, generation: "outage" }));
  const s2 = new QueuedSink(dest(), { dir: join(tmp, `q-${name}-outage`), ...BACKOFF }).start();
  const t1 = performance.now();
  const half = Math.ceil(again.length / 2);
  for (const b of again.slice(0, half)) await s2.write(b);
  await s2.flush(600_000);
  await store.stop();
  const down = performance.now();
  for (const b of again.slice(half)) await s2.write(b);
  // The outage itself: a timed wait is the point here (the store stays down this long).
  await Bun.sleep(OUTAGE_MS);
  await store.start();
  const back = performance.now();
  if (!DEFAULT_BACKOFF) s2.retryNow();
  // Default backoff: the next attempt can be up to maxBackoff (300 s) away.
  if (!(await s2.flush(900_000))) throw new Error(`${name}: queue did not drain after the outage`);
  const end = performance.now();
  const retried = s2.stats().retried;
  await s2.close();
  results[name]!.outage = {
    ms: end - t1,
    catchUpMs: end - back,
    downMs: back - down,
    retried,
    ...(await store.count("outage")),
  };
}

const [pg, ch, rs] = await Promise.all([startPostgres(), startClickHouse(), startRsyslog()]);
try {
  await timeFile();
  await timeQueued(
    "postgres",
    () => new PostgresDestination(PostgresSinkSchema.parse({ url: pg.url, table: "bench" })),
    {
      stop: () => pg.stop(),
      start: () => pg.start(),
      count: async (g) => {
        const [r] = await pg.query(
          `SELECT count(*)::int AS n, count(DISTINCT (batch_key, row_seq))::int AS d FROM bench WHERE batch_key LIKE '${g}:%'`,
        );
        return { stored: Number(r!.n), distinct: Number(r!.d) };
      },
    },
  );
  await timeQueued(
    "clickhouse",
    () =>
      new ClickHouseDestination(
        ClickHouseSinkSchema.parse({ url: ch.url, database: "bench", table: "results" }),
      ),
    {
      stop: () => ch.stop(),
      start: () => ch.start(),
      count: async (g) => {
        // Without FINAL: a batch delivered again is not stored twice (docs/sinks.md).
        const [n, d] = (
          await ch.query(
            `SELECT count(), uniqExact(batch_key, row_seq) FROM bench.results WHERE startsWith(batch_key, '${g}:')`,
          )
        )
          .trim()
          .split("\t")
          .map(Number);
        return { stored: n!, distinct: d! };
      },
    },
  );
  await timeQueued(
    "syslog",
    () => new SyslogDestination(SyslogSinkSchema.parse({ host: "127.0.0.1", port: rs.port })),
    {
      stop: () => rs.stop(),
      start: () => rs.start(),
      count: async (g) => {
        // RELP acknowledged every row; omfile may still be writing the last ones.
        const mine = () => rs.lines().filter((l) => l.includes(`key="${g}:`));
        const end = Date.now() + 30_000;
        while (mine().length < ROWS && Date.now() < end) await Bun.sleep(50);
        const keys = mine().map((l) => /key="([^"]+)" seq="(\d+)"/.exec(l)!.slice(1).join("/"));
        return { stored: keys.length, distinct: new Set(keys).size };
      },
    },
  );
} finally {
  pg.destroy();
  await ch.destroy();
  await rs.destroy();
  rmSync(tmp, { recursive: true, force: true });
}

for (const r of Object.values(results)) r.vsFile = r.rowsPerSec / results.file!.rowsPerSec;
if (values.json)
  console.log(
    JSON.stringify(
      { rows: ROWS, batch: BATCH, outageMs: OUTAGE_MS, defaultBackoff: DEFAULT_BACKOFF, sinks: results },
      null,
      2,
    ),
  );
else {
  console.log(`sink throughput, ${ROWS} rows in batches of ${BATCH} (baseline: file sink, same run)`);
  for (const [name, r] of Object.entries(results))
    console.log(
      `  ${name.padEnd(11)} ${Math.round(r.rowsPerSec).toString().padStart(9)} rows/s  ${r.ms.toFixed(0).padStart(7)} ms  stored ${r.stored}/${r.rows}  ×${r.vsFile!.toFixed(3)} of file${
        r.outage
          ? `  | outage ${(r.outage.downMs / 1000).toFixed(1)} s (${DEFAULT_BACKOFF ? "default" : "fast"} backoff): stored ${r.outage.stored}/${r.rows}, distinct ${r.outage.distinct}, ${r.outage.retried} retries, catch-up ${(r.outage.catchUpMs / 1000).toFixed(1)} s, pass ${(r.outage.ms / 1000).toFixed(1)} s`
          : ""
      }`,
    );
}
const bad = Object.entries(results).filter(
  ([, r]) =>
    r.stored !== r.rows || (r.outage && (r.outage.stored !== r.rows || r.outage.distinct !== r.rows)),
);
if (bad.length) {
  console.error(`rows lost or duplicated: ${bad.map(([n, r]) => `${n} ${JSON.stringify(r)}`).join(", ")}`);
  process.exit(1);
}
