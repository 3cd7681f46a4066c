/**
 * The PostgreSQL sink against a real throwaway cluster: an outage in the
 * middle (server stopped and restarted), a lost commit answer, a schema
 * conflict, text jsonb refuses, a 10 MB value. Every test ends by counting
 * what the table stored: each line exactly once.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PostgresDestination, PostgresSinkSchema } from "./postgres.ts";
import { QueuedSink } from "./queued-sink.ts";
import { havePostgres, type Postgres, startPostgres } from "./testutil/servers.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-pg-"));
let pg: Postgres;
let n = 0;
const fast = { minBackoffMs: 5, maxBackoffMs: 100 };
const line = (seq: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    name: "pack_p_q",
    hostIdentifier: "h1",
    calendarTime: "Thu Dec  3 18:00:00 2026 UTC",
    unixTime: 1796320800,
    epoch: 0,
    counter: seq,
    action: "added",
    columns: { seq: String(seq), ...extra },
    decorations: { host_uuid: "u" },
  });
const lines = (from: number, count: number) => Array.from({ length: count }, (_, i) => line(from + i));

function sink(table: string, extra: Partial<{ batchRows: number; timeoutSeconds: number }> = {}) {
  const dest = new PostgresDestination(PostgresSinkSchema.parse({ url: pg.url, table, ...extra }));
  return { dest, sink: new QueuedSink(dest, { dir: join(root, `q-${++n}`), ...fast }).start() };
}

async function seqs(table: string): Promise<number[]> {
  const rows = await pg.query(`SELECT (columns->>'seq')::int AS s FROM ${table} ORDER BY 1`);
  return rows.map((r) => Number(r.s));
}

describe.skipIf(!havePostgres)("PostgreSQL sink → real cluster", () => {
  beforeAll(async () => {
    pg = await startPostgres();
  }, 120_000);
  afterAll(() => {
    pg?.destroy();
    rmSync(root, { recursive: true, force: true });
  });

  test("creates the table and stores every field; a batch offered twice is stored once", async () => {
    const { sink: s } = sink("r_basic", { batchRows: 3 });
    try {
      await s.write({ generation: "g", first: 1, lines: lines(1, 7) });
      await s.write({ generation: "g", first: 1, lines: lines(1, 10) });
      expect(await s.flush(20_000)).toBe(true);
      expect(await seqs("r_basic")).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
      const [r] = await pg.query(
        `SELECT name, "hostIdentifier", "unixTime", counter, action, decorations->>'host_uuid' AS u, batch_key, row_seq FROM r_basic WHERE row_seq = 9`,
      );
      expect(r).toMatchObject({
        name: "pack_p_q",
        hostIdentifier: "h1",
        action: "added",
        u: "u",
        batch_key: "g:8-10",
      });
      expect(Number(r!.unixTime)).toBe(1796320800);
      expect(Number(r!.counter)).toBe(9);
      expect(s.stats()).toMatchObject({ sent: 10, dropped: 0, queued: 0 });
    } finally {
      await s.close();
    }
  }, 60_000);

  test("outage in the middle: server stopped and restarted, rows sent = rows stored, no duplicates", async () => {
    const { sink: s } = sink("r_outage");
    try {
      await s.write({ generation: "g", first: 1, lines: lines(1, 100) });
      expect(await s.flush(20_000)).toBe(true);
      pg.stop();
      for (let i = 0; i < 5; i++)
        await s.write({ generation: "g", first: 101 + i * 100, lines: lines(101 + i * 100, 100) });
      // Let the sender fail against the stopped server at least once.
      const end = Date.now() + 20_000;
      while (s.stats().retried === 0 && Date.now() < end) await Bun.sleep(20);
      expect(s.stats().retried).toBeGreaterThan(0);
      expect(s.stats().queued).toBe(500);
      await pg.start();
      s.retryNow();
      expect(await s.flush(30_000)).toBe(true);
      const got = await seqs("r_outage");
      expect(got.length).toBe(600);
      expect(new Set(got).size).toBe(600);
      expect(s.stats()).toMatchObject({ sent: 600, dropped: 0 });
    } finally {
      await s.close();
    }
  }, 120_000);

  test("a batch whose commit answer was lost is retried with the same key and stored once", async () => {
    const { dest, sink: s } = sink("r_lost");
    // The first delivery commits, then reports a failure, as a reset after COMMIT would.
    const real = dest.deliver.bind(dest);
    let lose = true;
    dest.deliver = async (b, sig) => {
      const o = await real(b, sig);
      if (lose && o.kind === "done") {
        lose = false;
        return { kind: "retry", error: "connection reset after commit" };
      }
      return o;
    };
    try {
      await s.write({ generation: "g", first: 1, lines: lines(1, 5) });
      expect(await s.flush(20_000)).toBe(true);
      expect(await seqs("r_lost")).toEqual([1, 2, 3, 4, 5]);
      expect(dest.counters.batchesAlreadyStored).toBe(1);
    } finally {
      await s.close();
    }
  }, 60_000);

  test("a store that stops answering (table locked) times out, is retried, and stores the batch once", async () => {
    const { SQL } = await import("bun");
    const { sink: first } = sink("r_locked");
    await first.write({ generation: "g", first: 1, lines: lines(1, 2) });
    expect(await first.flush(20_000)).toBe(true);
    await first.close();
    const holder = new SQL({ url: pg.url, max: 1 });
    const { sink: s } = sink("r_locked", { timeoutSeconds: 0.5 });
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    let locked!: () => void;
    const lockHeld = new Promise<void>((r) => {
      locked = r;
    });
    // Another session holds an exclusive lock: our INSERTs wait until statement_timeout ends them.
    const lockTx = holder.begin(async (tx) => {
      await tx.unsafe("LOCK TABLE r_locked IN ACCESS EXCLUSIVE MODE");
      locked();
      await released;
    });
    try {
      // Write only once the lock is held: on a loaded box the batch could otherwise land first.
      await Promise.race([lockHeld, lockTx]);
      await s.write({ generation: "g", first: 3, lines: lines(3, 4) });
      // Until the server has ended an attempt by statement_timeout (after at least two tries): on a
      // loaded box one attempt may instead miss the 0.5 s connect limit, which is retried the same way.
      const end = Date.now() + 30_000;
      const timedOut = () =>
        s.stats().retried >= 2 && String(s.stats().lastError).includes("statement timeout");
      while (!timedOut() && Date.now() < end) await Bun.sleep(20);
      expect(s.stats().retried).toBeGreaterThanOrEqual(2);
      expect(s.stats()).toMatchObject({ queued: 4, dropped: 0 });
      expect(s.stats().lastError).toContain("statement timeout");
      release();
      await lockTx;
      s.retryNow();
      expect(await s.flush(20_000)).toBe(true);
      expect(await seqs("r_locked")).toEqual([1, 2, 3, 4, 5, 6]);
    } finally {
      release();
      await s.close();
      await holder.close();
    }
  }, 60_000);

  test("a schema conflict keeps the batch queued with a clear error until the table is fixed", async () => {
    await pg.query("CREATE TABLE r_conflict (id bigserial PRIMARY KEY, something_else text)");
    const { sink: s } = sink("r_conflict");
    try {
      await s.write({ generation: "g", first: 1, lines: lines(1, 3) });
      const end = Date.now() + 20_000;
      while (!s.stats().lastError && Date.now() < end) await Bun.sleep(20);
      expect(s.stats().lastError).toContain("SINK_SCHEMA_CONFLICT");
      expect(s.stats()).toMatchObject({ queued: 3, sent: 0, dropped: 0 });
      await pg.query("DROP TABLE r_conflict");
      s.retryNow();
      expect(await s.flush(20_000)).toBe(true);
      expect(await seqs("r_conflict")).toEqual([1, 2, 3]);
    } finally {
      await s.close();
    }
  }, 60_000);

  test("U+0000, lone surrogates (invalid UTF-8) and a 10 MB value are stored, replaced and counted", async () => {
    const { dest, sink: s } = sink("r_text");
    const big = "x".repeat(10 * 1024 * 1024);
    try {
      await s.write({
        generation: "g",
        first: 1,
        lines: [line(1, { nul: "a\u0000b", bad: "c\ud800d", "k\u0000": "v" }), line(2, { big })],
      });
      expect(await s.flush(60_000)).toBe(true);
      const rows = await pg.query(
        `SELECT columns->>'nul' AS nul, columns->>'bad' AS bad, length(columns->>'big') AS big FROM r_text ORDER BY row_seq`,
      );
      expect(rows[0]).toMatchObject({ nul: "a\ufffdb", bad: "c\ufffdd" });
      expect(Number(rows[1]!.big)).toBe(10 * 1024 * 1024);
      expect(dest.counters.replacedChars).toBe(3);
      expect(s.stats()).toMatchObject({ sent: 2, dropped: 0 });
    } finally {
      await s.close();
    }
  }, 120_000);
});
