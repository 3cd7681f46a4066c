/**
 * The ClickHouse sink against a real clickhouse-server (18.16, Debian's)
 * started by the test on loopback in a temp dir: idempotency at insert time
 * (a batch delivered again, an answer lost after the commit, an earlier
 * attempt still running, a batch half stored — each counted WITHOUT FINAL),
 * an outage in the middle, a store answering 500, a schema conflict, text
 * cleaning.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClickHouseDestination, ClickHouseSinkSchema, insertQueryId } from "./clickhouse.ts";
import { type OutgoingBatch, QueuedSink } from "./queued-sink.ts";
import { type ClickHouse, haveClickHouse, startClickHouse, waitFor } from "./testutil/servers.ts";

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

  /** Batch `g:1-20` as the queue hands it over. */
  const batch20 = (): OutgoingBatch => {
    const text = `${lines(1, 20).join("\n")}\n`;
    return {
      key: "g:1-20",
      generation: "g",
      first: 1,
      last: 20,
      raw: Buffer.from(text),
      gzipped: false,
      lines: () => text.trim().split("\n"),
    };
  };
  const signal = new AbortController().signal;

  test("the same batch delivered twice is stored once at insert time: count() without FINAL", async () => {
    const { dest } = sink("r_twice");
    expect(await dest.deliver(batch20(), signal)).toEqual({ kind: "done" });
    expect(await dest.deliver(batch20(), signal)).toEqual({ kind: "done" });
    expect(await count("SELECT count() FROM outpost.r_twice")).toBe(20);
    expect(await count("SELECT uniqExact(row_seq) FROM outpost.r_twice")).toBe(20);
    expect(dest.counters).toMatchObject({ batchesAlreadyStored: 1, rowsAlreadyStored: 20 });
  }, 60_000);

  test("an answer lost after the commit: the queue retries the same batch, stored once without FINAL", async () => {
    let lost = 0;
    // The INSERT reaches the real server and commits; the agent never hears back (connection reset).
    const losesAnswer: typeof fetch = (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
      const res = await fetch(input, init);
      if (String(input).includes("INSERT") && lost++ === 0) {
        await res.body?.cancel();
        throw new Error("ECONNRESET: socket closed before the answer");
      }
      return res;
    }) as typeof fetch;
    const { dest, sink: s } = sink("r_lost", losesAnswer);
    try {
      await s.write({ generation: "g", first: 1, lines: lines(1, 30) });
      expect(await s.flush(20_000)).toBe(true);
      expect(lost).toBe(1);
      expect(s.stats()).toMatchObject({ sent: 30, dropped: 0, retried: 1 });
      expect(await count("SELECT count() FROM outpost.r_lost")).toBe(30);
      expect(dest.counters).toMatchObject({ batchesAlreadyStored: 1, rowsAlreadyStored: 30 });
    } finally {
      await s.close();
    }
  }, 60_000);

  test("an earlier attempt still inserting makes the retry wait, then find its rows: stored once without FINAL", async () => {
    const { dest } = sink("r_slow");
    // Create the table, then start "the first attempt": the same rows under the batch's query_id,
    // the body streamed slowly so the INSERT is still running on the server.
    expect(await dest.deliver({ ...batch20(), key: "warm:1-20", generation: "warm" }, signal)).toEqual({
      kind: "done",
    });
    // ClickHouse 18.16 reads an HTTP body in 1 MiB chunks and registers the query only then (or at
    // the body's end): the rows sent first are padded past that, so the attempt shows as running.
    const body = batch20()
      .lines()
      .map((l, i) => {
        const o = JSON.parse(l) as { name: string; columns: Record<string, string> };
        const columns = i < 10 ? { ...o.columns, pad: "p".repeat(130_000) } : o.columns;
        return `${JSON.stringify({ batch_key: "g:1-20", row_seq: i + 1, name: o.name, columns: JSON.stringify(columns) })}\n`;
      });
    // A raw HTTP request whose Content-Length covers all rows but which sends only half of them, so
    // the INSERT is still running on the server until the rest follows.
    const queryId = insertQueryId("outpost", "r_slow", "g:1-20");
    const [head, tail] = [Buffer.from(body.slice(0, 10).join("")), Buffer.from(body.slice(10).join(""))];
    const url = new URL(ch.url);
    const path = `/?query=${encodeURIComponent("INSERT INTO outpost.r_slow FORMAT JSONEachRow")}&query_id=${queryId}`;
    const sock = connect({ host: url.hostname, port: Number(url.port) });
    let answer = "";
    sock.on("data", (d) => {
      answer += d.toString();
    });
    const closed = new Promise<void>((r) => sock.once("close", () => r()));
    await new Promise<void>((r) => sock.once("connect", () => r()));
    sock.write(
      `POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Length: ${head.length + tail.length}\r\nConnection: close\r\n\r\n`,
    );
    sock.write(head);
    await waitFor(
      "the first attempt running",
      async () => (await count(`SELECT count() FROM system.processes WHERE query_id = '${queryId}'`)) === 1,
    );
    const retry = await dest.deliver(batch20(), signal);
    expect(retry).toMatchObject({ kind: "retry" });
    expect((retry as { error: string }).error).toContain("still running");
    sock.end(tail);
    await closed;
    expect(answer).toStartWith("HTTP/1.1 200");
    expect(await dest.deliver(batch20(), signal)).toEqual({ kind: "done" });
    expect(await count("SELECT count() FROM outpost.r_slow WHERE batch_key = 'g:1-20'")).toBe(20);
    expect(dest.counters).toMatchObject({ batchesAlreadyStored: 1, rowsAlreadyStored: 20 });
  }, 60_000);

  test("a batch half stored (an insert cut short) gets only its missing rows", async () => {
    const { dest } = sink("r_half");
    expect(await dest.deliver({ ...batch20(), key: "warm:1-20", generation: "warm" }, signal)).toEqual({
      kind: "done",
    });
    await ch.query(
      `INSERT INTO outpost.r_half (batch_key, row_seq, name) SELECT 'g:1-20', number + 1, 'pack_p_q' FROM system.numbers LIMIT 7`,
    );
    expect(await dest.deliver(batch20(), signal)).toEqual({ kind: "done" });
    expect(await count("SELECT count() FROM outpost.r_half WHERE batch_key = 'g:1-20'")).toBe(20);
    expect(await count("SELECT uniqExact(row_seq) FROM outpost.r_half WHERE batch_key = 'g:1-20'")).toBe(20);
    expect(dest.counters).toMatchObject({ batchesAlreadyStored: 1, rowsAlreadyStored: 7 });
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
      expect(await count("SELECT count() FROM outpost.r_outage")).toBe(500);
      expect(await count("SELECT uniqExact(batch_key, row_seq) FROM outpost.r_outage")).toBe(500);
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
      expect(await count("SELECT count() FROM outpost.r_flaky")).toBe(10);
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
      expect(await count("SELECT count() FROM outpost.r_conflict")).toBe(3);
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
      expect((await ch.query("SELECT columns FROM outpost.r_text WHERE row_seq = 1")).trim()).toContain(
        "a\ufffdb",
      );
      expect(await count("SELECT max(length(columns)) FROM outpost.r_text")).toBeGreaterThan(
        10 * 1024 * 1024,
      );
      expect(dest.counters.replacedChars).toBe(2);
    } finally {
      await s.close();
    }
  }, 120_000);
});
