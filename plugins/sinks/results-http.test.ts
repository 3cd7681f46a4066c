/**
 * The data-lake sink against the real receiver (`contentctl lake serve`'s
 * server) over loopback HTTP: outages, lost answers, restarts on both
 * sides, malformed batches and the queue cap. Every test ends by counting
 * what the lake stored: each line exactly once.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LakeReceiver, startLakeReceiver } from "./lake-receiver.ts";
import { HttpLakeSink } from "./results-http.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-lake-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const dir = (name: string) => join(root, `${name}-${++n}`);
const line = (seq: number) =>
  JSON.stringify({ name: "pack_p_q", hostIdentifier: "h", columns: { seq: String(seq) }, action: "added" });
const lines = (from: number, count: number) => Array.from({ length: count }, (_, i) => line(from + i));
const fast = { minBackoffMs: 5, maxBackoffMs: 40 };

function seqs(lake: LakeReceiver): number[] {
  return lake.lines().map((l) => Number(JSON.parse(l).columns.seq));
}

describe("HttpLakeSink → lake receiver", () => {
  test("delivers gzip'd batches with idempotency keys; a batch offered twice is stored once", async () => {
    const lake = await startLakeReceiver({ dir: dir("lake") });
    const sink = new HttpLakeSink({ url: lake.url, dir: dir("q"), ...fast }).start();
    try {
      await sink.write({ generation: "gen-a", first: 1, lines: lines(1, 3) });
      await sink.write({ generation: "gen-a", first: 1, lines: lines(1, 5) });
      expect(await sink.flush(5000)).toBe(true);
      expect(seqs(lake)).toEqual([1, 2, 3, 4, 5]);
      expect(lake.stats()).toMatchObject({ batches: 2, lines: 5, duplicates: 0 });
      expect(sink.stats()).toMatchObject({ deliveredLines: 5, duplicateLines: 3, queuedLines: 0 });
    } finally {
      await sink.close();
      await lake.stop();
    }
  });

  test("an outage costs nothing: batches queue on disk and arrive once the lake is back", async () => {
    const lakeDir = dir("lake");
    let lake = await startLakeReceiver({ dir: lakeDir });
    const port = lake.port;
    const sink = new HttpLakeSink({ url: lake.url, dir: dir("q"), ...fast }).start();
    try {
      await sink.write({ generation: "g", first: 1, lines: lines(1, 10) });
      expect(await sink.flush(5000)).toBe(true);
      await lake.stop();
      for (let i = 0; i < 5; i++)
        await sink.write({ generation: "g", first: 11 + i * 10, lines: lines(11 + i * 10, 10) });
      expect(sink.stats().queuedLines).toBe(50);
      lake = await startLakeReceiver({ dir: lakeDir, port });
      sink.retryNow();
      expect(await sink.flush(10_000)).toBe(true);
      expect(seqs(lake)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    } finally {
      await sink.close();
      await lake.stop();
    }
  });

  test("a lost answer (stored, then 500) is retried with the same key and not stored twice", async () => {
    let failOnce = true;
    const lake = await startLakeReceiver({
      dir: dir("lake"),
      afterStore: () => {
        if (failOnce) {
          failOnce = false;
          throw new Error("connection reset after commit");
        }
      },
    });
    const sink = new HttpLakeSink({ url: lake.url, dir: dir("q"), ...fast }).start();
    try {
      await sink.write({ generation: "g", first: 1, lines: lines(1, 4) });
      expect(await sink.flush(5000)).toBe(true);
      expect(seqs(lake)).toEqual([1, 2, 3, 4]);
      expect(lake.stats()).toMatchObject({ batches: 1, duplicates: 1 });
    } finally {
      await sink.close();
      await lake.stop();
    }
  });

  test("the queue survives a restart of the agent side", async () => {
    const lake = await startLakeReceiver({ dir: dir("lake") });
    const q = dir("q");
    // Nothing listens here: everything stays queued.
    const first = new HttpLakeSink({ url: "http://127.0.0.1:9/v1/results", dir: q, ...fast });
    await first.write({ generation: "g", first: 1, lines: lines(1, 7) });
    await first.close();
    const second = new HttpLakeSink({ url: lake.url, dir: q, ...fast }).start();
    try {
      // The restarted sink still knows what it holds.
      await second.write({ generation: "g", first: 1, lines: lines(1, 9) });
      expect(await second.flush(5000)).toBe(true);
      expect(seqs(lake)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    } finally {
      await second.close();
      await lake.stop();
    }
  });

  test("a batch the lake rejects is moved aside and does not block the queue", async () => {
    const lake = await startLakeReceiver({ dir: dir("lake") });
    const q = dir("q");
    const sink = new HttpLakeSink({ url: lake.url, dir: q, ...fast }).start();
    try {
      await sink.write({ generation: "g", first: 1, lines: ['{"not":"a result line"}'] });
      await sink.write({ generation: "g", first: 2, lines: lines(2, 2) });
      expect(await sink.flush(5000)).toBe(true);
      expect(seqs(lake)).toEqual([2, 3]);
      expect(readdirSync(join(q, "rejected"))).toHaveLength(1);
      expect(sink.stats()).toMatchObject({ droppedLines: 1, deliveredLines: 2 });
    } finally {
      await sink.close();
      await lake.stop();
    }
  });

  test("the queue cap drops the oldest batches and counts them", async () => {
    const q = dir("q");
    const sink = new HttpLakeSink({
      url: "http://127.0.0.1:9/v1/results",
      dir: q,
      gzip: false,
      queueMaxBytes: 2000,
      ...fast,
    });
    for (let i = 0; i < 20; i++)
      await sink.write({ generation: "g", first: i * 5 + 1, lines: lines(i * 5 + 1, 5) });
    const s = sink.stats();
    expect(s.queuedBytes).toBeLessThanOrEqual(2000);
    expect(s.droppedLines + s.queuedLines).toBe(100);
    expect(s.droppedLines).toBeGreaterThan(0);
    await sink.close();
  });

  test("the token is required when the lake has one", async () => {
    const lake = await startLakeReceiver({ dir: dir("lake"), token: "s3cret-token" });
    const bad = new HttpLakeSink({ url: lake.url, dir: dir("q"), token: "wrong-token!", ...fast }).start();
    const good = new HttpLakeSink({ url: lake.url, dir: dir("q"), token: "s3cret-token", ...fast }).start();
    try {
      await bad.write({ generation: "g", first: 1, lines: lines(1, 1) });
      await good.write({ generation: "h", first: 1, lines: lines(1, 1) });
      expect(await good.flush(5000)).toBe(true);
      expect(lake.stats().lines).toBe(1);
      // 401 is retried (the token may be fixed), never dropped.
      expect(bad.stats()).toMatchObject({ queuedLines: 1, droppedLines: 0 });
      expect(lake.stats().rejected).toBeGreaterThan(0);
    } finally {
      await bad.close();
      await good.close();
      await lake.stop();
    }
  });
});

describe("lake receiver", () => {
  test("refuses requests without a key and bodies that are not osquery results", async () => {
    const lake = await startLakeReceiver({ dir: dir("lake") });
    try {
      const post = (headers: Record<string, string>, body: string) =>
        fetch(lake.url, { method: "POST", headers, body });
      expect((await post({}, line(1))).status).toBe(400);
      const r = await post({ "idempotency-key": "k1" }, "not json");
      expect(r.status).toBe(400);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe("LAKE_BAD_BODY");
      expect((await post({ "idempotency-key": "k2", "content-encoding": "gzip" }, "not gzip")).status).toBe(
        400,
      );
      expect((await post({ "idempotency-key": "k3" }, line(1))).status).toBe(200);
      expect(existsSync(join(lake.dir, "batches", "k3.ndjson"))).toBe(true);
    } finally {
      await lake.stop();
    }
  });

  test("refuses a gzip bomb without inflating it", async () => {
    const lake = await startLakeReceiver({ dir: dir("lake"), maxInflatedBytes: 1024 * 1024 });
    try {
      const bomb = Bun.gzipSync(new Uint8Array(64 * 1024 * 1024));
      const r = await fetch(lake.url, {
        method: "POST",
        headers: { "idempotency-key": "bomb", "content-encoding": "gzip" },
        body: bomb,
      });
      expect(r.status).toBe(400);
    } finally {
      await lake.stop();
    }
  });
});
