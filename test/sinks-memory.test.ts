/**
 * Bounded memory with the store down: a PostgreSQL sink (real throwaway
 * cluster) whose server is stopped while 200 000 result rows (~420 bytes
 * each, ~84 MB of JSON) are queued. The queue is on disk, so the process's
 * heap after a full GC grows by a small fraction of what was queued; RSS is
 * reported beside it. Then the server returns and every row arrives once
 * (count and distinct count in the table).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PostgresDestination, PostgresSinkSchema } from "../plugins/sinks/postgres.ts";
import { QueuedSink } from "../plugins/sinks/queued-sink.ts";
import { havePostgres, type Postgres, startPostgres, waitFor } from "../plugins/sinks/testutil/servers.ts";

const ROWS = 200_000;
const BATCH = 1000;
const root = mkdtempSync(join(tmpdir(), "outpost-sink-mem-"));
let pg: Postgres;

/** A processes-table row as osquery logs it, different per seq. */
const line = (seq: number) =>
  JSON.stringify({
    name: "pack_ir_processes",
    hostIdentifier: "edge-7",
    calendarTime: "Thu Dec  3 18:00:00 2026 UTC",
    unixTime: 1796320800 + Math.floor(seq / 1000),
    epoch: 0,
    counter: seq,
    action: "added",
    columns: {
      pid: String(seq),
      parent: String(seq % 977),
      name: `worker-${seq % 131}`,
      path: `/usr/lib/app/bin/worker-${seq % 131}`,
      cmdline: `/usr/lib/app/bin/worker-${seq % 131} --id ${seq} --config /etc/app/${seq % 17}.conf`,
      uid: String(1000 + (seq % 7)),
      start_time: String(1796300000 + seq),
    },
    decorations: { host_uuid: "4c4c4544-0042-3510-8052-b2c04f4e4d32", hostname: "edge-7" },
  });

function heapAfterGc(): number {
  Bun.gc(true);
  return process.memoryUsage().heapUsed;
}
const mb = (n: number) => Math.round((n / 1024 / 1024) * 10) / 10;

describe.skipIf(!havePostgres)("sink memory with the store down", () => {
  beforeAll(async () => {
    pg = await startPostgres();
  }, 120_000);
  afterAll(() => {
    pg?.destroy();
    rmSync(root, { recursive: true, force: true });
  });

  test(`${ROWS} rows queued while PostgreSQL is down: heap stays bounded; all arrive once when it returns`, async () => {
    const dest = new PostgresDestination(PostgresSinkSchema.parse({ url: pg.url, table: "mem" }));
    const sink = new QueuedSink(dest, { dir: join(root, "q"), minBackoffMs: 50, maxBackoffMs: 1000 }).start();
    try {
      // Warm up (table created, driver loaded), then measure from there.
      await sink.write({ generation: "warm", first: 1, lines: [line(0)] });
      expect(await sink.flush(30_000)).toBe(true);
      pg.stop();
      const heap0 = heapAfterGc();
      const rss0 = process.memoryUsage().rss;
      let jsonBytes = 0;
      for (let first = 1; first <= ROWS; first += BATCH) {
        const lines = Array.from({ length: BATCH }, (_, i) => line(first + i));
        for (const l of lines) jsonBytes += l.length + 1;
        await sink.write({ generation: "g", first, lines });
      }
      const queued = sink.stats();
      expect(queued).toMatchObject({ queued: ROWS, dropped: 0, sent: 1 });
      // The sender keeps trying meanwhile (and keeps nothing of the batch between attempts).
      await waitFor("a failed delivery attempt", () => sink.stats().retried > 0, 30_000);
      const heapGrowth = heapAfterGc() - heap0;
      const rssGrowth = process.memoryUsage().rss - rss0;
      console.log(
        `store down, ${ROWS} rows queued: ${mb(jsonBytes)} MB of JSON, ${mb(queued.queuedBytes)} MB on disk (gzip); heap +${mb(heapGrowth)} MB after GC, RSS +${mb(rssGrowth)} MB`,
      );
      // The rows are on disk, not in memory: the heap keeps a few bytes per batch — not the rows
      // (~89 MB), nor even their gzip'd bytes (~6 MB). Measured: +1.4 MB.
      expect(queued.queuedBytes).toBeGreaterThan(4 * 1024 * 1024);
      expect(heapGrowth).toBeLessThan(4 * 1024 * 1024);

      await pg.start();
      sink.retryNow();
      let peak = 0;
      await waitFor(
        "the queue drained",
        () => {
          peak = Math.max(peak, process.memoryUsage().heapUsed - heap0);
          return sink.stats().queued === 0;
        },
        150_000,
      );
      const [r] = await pg.query(
        "SELECT count(*)::int AS n, count(DISTINCT row_seq)::int AS d FROM mem WHERE batch_key LIKE 'g:%'",
      );
      console.log(
        `store back: ${r!.n} rows stored, ${r!.d} distinct; heap peak while draining +${mb(peak)} MB`,
      );
      expect({ n: Number(r!.n), d: Number(r!.d) }).toEqual({ n: ROWS, d: ROWS });
      expect(sink.stats()).toMatchObject({ sent: ROWS + 1, dropped: 0, queued: 0 });
    } finally {
      await sink.close();
    }
  }, 240_000);
});
