/**
 * The ClickHouse sink against a real clickhouse-server (18.16, Debian's)
 * started by the test on loopback in a temp dir: the ReplacingMergeTree
 * idempotency (one batch delivered twice counts once with FINAL), an outage
 * in the middle, a store answering 500, a schema conflict, text cleaning.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClickHouseDestination, ClickHouseSinkSchema } from "./clickhouse.ts";
import { type OutgoingBatch, QueuedSink } from "./queued-sink.ts";
import { type ClickHouse, haveClickHouse, startClickHouse } from "./testutil/servers.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-ch-"));
let ch: ClickHouse;
let n = 0;
const fast = { minBackoffMs: 5, maxBackoffMs: 100 };
const line = (seq: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    name: "pack_p_q",
    hostIdentifier: "h1",
    unixTime: 1796320800,
    counter: seq,
    action: "added",
    columns: { seq: String(seq), ...extra },
  });
const lines = (from: number, count: number) => Array.from({ length: count }, (_, i) => line(from + i));

function sink(table: string, fetchImpl?: typeof fetch) {
  const dest = new ClickHouseDestination(
    ClickHouseSinkSchema.parse({ url: ch.url, database: "outpost", table }),
    fetchImpl,
  );
  return { dest, sink: new QueuedSink(dest, { dir: join(root, `q-${++n}`), ...fast }).start() };
}
const count = async (q: string) => Number((await ch.query(q)).trim());

describe.skipIf(!haveClickHouse)("ClickHouse sink → real clickhouse-server", () => {
  beforeAll(async () => {
    ch = await startClickHouse();
  }, 90_000);
  afterAll(async () => {
    await ch?.destroy();
    rmSync(root, { recursive: true, force: true });
  });

  test("the same batch delivered twice counts once with FINAL (ReplacingMergeTree on batch key + row)", async () => {
    const { dest } = sink("r_twice");
    const text = `${lines(1, 20).join("\n")}\n`;
    const batch: OutgoingBatch = {
      key: "g:1-20",
      generation: "g",
      first: 1,
      last: 20,
      raw: Buffer.from(text),
      gzipped: false,
      lines: () => text.trim().split("\n"),
    };
    const signal = new AbortController().signal;
    expect(await dest.deliver(batch, signal)).toEqual({ kind: "done" });
    expect(await dest.deliver(batch, signal)).toEqual({ kind: "done" });
    // Without FINAL both copies may still be there; FINAL collapses rows with the same key.
    expect(await count("SELECT count() FROM outpost.r_twice FINAL")).toBe(20);
    expect(await count("SELECT uniqExact(row_seq) FROM outpost.r_twice")).toBe(20);
  }, 60_000);

  test("outage in the middle: server stopped and restarted, rows sent = rows stored, no duplicates", async () => {
    const { sink: s } = sink("r_outage");
    try {
      await s.write({ generation: "g", first: 1, lines: lines(1, 100) });
      expect(await s.flush(20_000)).toBe(true);
      await ch.stop();
      for (let i = 0; i < 4; i++)
        await s.write({ generation: "g", first: 101 + i * 100, lines: lines(101 + i * 100, 100) });
      const end = Date.now() + 20_000;
      while (s.stats().retried === 0 && Date.now() < end) await Bun.sleep(20);
      expect(s.stats()).toMatchObject({ queued: 400, dropped: 0 });
      await ch.start();
      s.retryNow();
      expect(await s.flush(60_000)).toBe(true);
      expect(await count("SELECT count() FROM outpost.r_outage FINAL")).toBe(500);
      expect(await count("SELECT count() FROM outpost.r_outage")).toBe(500);
      expect(s.stats()).toMatchObject({ sent: 500, dropped: 0 });
    } finally {
      await s.close();
    }
  }, 120_000);

  test("a store answering 500 or timing out keeps the batch queued and retries it", async () => {
    let calls = 0;
    const flaky: typeof fetch = (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
      calls++;
      if (calls === 2) return new Response("Code: 999, e.displayText() = overloaded", { status: 500 });
      if (calls === 3) throw new DOMException("The operation timed out.", "TimeoutError");
      return fetch(input, init);
    }) as typeof fetch;
    const { sink: s } = sink("r_flaky", flaky);
    try {
      await s.write({ generation: "g", first: 1, lines: lines(1, 10) });
      expect(await s.flush(20_000)).toBe(true);
      expect(await count("SELECT count() FROM outpost.r_flaky FINAL")).toBe(10);
      expect(s.stats()).toMatchObject({ sent: 10, dropped: 0 });
      expect(s.stats().retried).toBeGreaterThanOrEqual(2);
    } finally {
      await s.close();
    }
  }, 60_000);

  test("a schema conflict is named and nothing is lost once the table is fixed", async () => {
    await ch.query("CREATE DATABASE IF NOT EXISTS outpost");
    await ch.query("CREATE TABLE outpost.r_conflict (other String) ENGINE = MergeTree() ORDER BY other");
    const { sink: s } = sink("r_conflict");
    try {
      await s.write({ generation: "g", first: 1, lines: lines(1, 3) });
      const end = Date.now() + 20_000;
      while (!s.stats().lastError && Date.now() < end) await Bun.sleep(20);
      expect(s.stats().lastError).toContain("SINK_SCHEMA_CONFLICT");
      expect(s.stats()).toMatchObject({ queued: 3, dropped: 0 });
      await ch.query("DROP TABLE outpost.r_conflict");
      s.retryNow();
      expect(await s.flush(20_000)).toBe(true);
      expect(await count("SELECT count() FROM outpost.r_conflict FINAL")).toBe(3);
    } finally {
      await s.close();
    }
  }, 60_000);

  test("U+0000 and lone surrogates are replaced and counted; a 10 MB value is stored", async () => {
    const { dest, sink: s } = sink("r_text");
    try {
      await s.write({
        generation: "g",
        first: 1,
        lines: [
          line(1, { nul: "a\u0000b", bad: "c\udc00d" }),
          line(2, { big: "z".repeat(10 * 1024 * 1024) }),
        ],
      });
      expect(await s.flush(60_000)).toBe(true);
      expect((await ch.query("SELECT columns FROM outpost.r_text FINAL WHERE row_seq = 1")).trim()).toContain(
        "a\ufffdb",
      );
      expect(await count("SELECT max(length(columns)) FROM outpost.r_text FINAL")).toBeGreaterThan(
        10 * 1024 * 1024,
      );
      expect(dest.counters.replacedChars).toBe(2);
    } finally {
      await s.close();
    }
  }, 120_000);
});
