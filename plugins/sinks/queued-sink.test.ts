/**
 * The shared queue under every network sink, against a scripted
 * destination: order and keys, retry with backoff, a rejected batch set
 * aside, the cap (dropped counted, health reason + event raised, nothing
 * dropped below the cap; one alert per drop episode, across a restart too),
 * lifetime totals across a restart, and a queue
 * disk that is really full (a tiny tmpfs): the write fails with
 * SINK_QUEUE_WRITE and nothing that was accepted is lost.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HealthBoard } from "../../core/health/reasons.ts";
import {
  type Destination,
  type Outcome,
  type OutgoingBatch,
  QueuedSink,
  queueTotals,
} from "./queued-sink.ts";
import { reportDrops } from "./registry.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-queue-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const dir = () => join(root, `q-${++n}`);
const fast = { minBackoffMs: 1, maxBackoffMs: 5 };
const lines = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => JSON.stringify({ name: "q", columns: { seq: String(from + i) } }));

/** Answers from a script (then "done"), recording every batch it was offered. */
class Scripted implements Destination {
  readonly name = "scripted";
  readonly kind = "test";
  readonly seen: { key: string; lines: string[] }[] = [];
  constructor(private readonly script: Outcome[] = []) {}
  async deliver(b: OutgoingBatch): Promise<Outcome> {
    this.seen.push({ key: b.key, lines: b.lines() });
    return this.script.shift() ?? { kind: "done" };
  }
}

describe("QueuedSink", () => {
  test("delivers in order with stable keys; a retry repeats the same key; rejected goes aside", async () => {
    const dest = new Scripted([
      { kind: "retry", error: "store down" },
      { kind: "done" },
      { kind: "rejected", error: "bad batch" },
    ]);
    const d = dir();
    const s = new QueuedSink(dest, { dir: d, ...fast }).start();
    try {
      await s.write({ generation: "g", first: 1, lines: lines(1, 3) });
      await s.write({ generation: "g", first: 4, lines: lines(4, 2) });
      await s.write({ generation: "g", first: 6, lines: lines(6, 1) });
      expect(await s.flush(5000)).toBe(true);
      expect(dest.seen.map((x) => x.key)).toEqual(["g:1-3", "g:1-3", "g:4-5", "g:6-6"]);
      expect(readdirSync(join(d, "rejected"))).toHaveLength(1);
      expect(s.stats()).toMatchObject({ sent: 4, dropped: 2, retried: 1, queued: 0, lastError: "bad batch" });
    } finally {
      await s.close();
    }
  });

  test("below the cap nothing is dropped; past it the oldest go, counted, with a health reason and an event", async () => {
    const health = new HealthBoard(() => new Date());
    const events: { type: string; fields?: Record<string, unknown> }[] = [];
    const onDrop = reportDrops({ health, events: { emit: (type, fields) => events.push({ type, fields }) } });
    // Never started: everything stays queued, as in an outage.
    const big = (seq: number) => [JSON.stringify({ name: "q", pad: "x".repeat(700 * 1024), seq })];
    const s = new QueuedSink(new Scripted(), { dir: dir(), gzip: false, queueMaxBytes: 1024 * 1024, onDrop });
    await s.write({ generation: "g", first: 1, lines: big(1) });
    expect(s.stats()).toMatchObject({ dropped: 0, queued: 1 });
    expect(health.list()).toHaveLength(0);
    await s.write({ generation: "g", first: 2, lines: big(2) });
    expect(s.stats()).toMatchObject({ dropped: 1, queued: 1 });
    expect(health.list()).toMatchObject([
      { source: "sink:scripted", code: "SINK_QUEUE_DROPPED", level: "amber" },
    ]);
    expect(events).toMatchObject([
      { type: "sink-dropped", fields: { sink: "scripted", lines: 1, totalDropped: 1 } },
    ]);
    await s.close();
  });

  test("a drop episode raises one alert with the sink and counts; the next episode (after the queue drained) another", async () => {
    const health = new HealthBoard(() => new Date());
    const events: { type: string; fields?: Record<string, unknown> }[] = [];
    const alerts: { kind: string; code: string; reason: string; file?: string }[] = [];
    const onDrop = reportDrops({
      health,
      events: { emit: (type, fields) => events.push({ type, fields }) },
      notify: (a) => alerts.push(a),
    });
    const big = (seq: number) => [JSON.stringify({ name: "q", pad: "x".repeat(700 * 1024), seq })];
    const d = dir();
    const opts = { dir: d, gzip: false, queueMaxBytes: 1024 * 1024, onDrop, ...fast };
    // Store down (not started): the second and third batch each push the oldest out.
    const s = new QueuedSink(new Scripted(), opts);
    for (let seq = 1; seq <= 3; seq++) await s.write({ generation: "g", first: seq, lines: big(seq) });
    expect(s.stats()).toMatchObject({ dropped: 2, queued: 1 });
    expect(events.filter((e) => e.type === "sink-dropped")).toHaveLength(2);
    expect(alerts).toEqual([
      {
        kind: "sink-dropped",
        code: "SINK_QUEUE_DROPPED",
        file: d,
        reason: expect.stringContaining(
          "scripted: queue cap (1 MiB) reached; 1 oldest lines dropped, 1 still queued",
        ),
      },
    ]);
    expect(health.list()[0]!.message).toContain("2 lines dropped since");
    // A restart in the middle of the episode: the cursor remembers it, so no second alert.
    await s.close();
    const again = new QueuedSink(new Scripted(), opts);
    await again.write({ generation: "g", first: 4, lines: big(4) });
    expect(again.stats()).toMatchObject({ dropped: 3 });
    expect(alerts).toHaveLength(1);
    // The store is back and the queue drains: the episode is over; the next drop alerts again.
    again.start();
    expect(await again.flush(5000)).toBe(true);
    expect(JSON.parse(readFileSync(join(d, "cursor.json"), "utf8")).dropEpisode).toBeUndefined();
    await again.close();
    const third = new QueuedSink(new Scripted(), opts);
    for (let seq = 5; seq <= 6; seq++) await third.write({ generation: "g", first: seq, lines: big(seq) });
    expect(alerts).toHaveLength(2);
    expect(alerts[1]!.reason).toContain("1 oldest lines dropped");
    await third.close();
  });

  test("sent and dropped are lifetime totals that survive a restart", async () => {
    const d = dir();
    const a = new QueuedSink(new Scripted(), { dir: d, ...fast }).start();
    await a.write({ generation: "g", first: 1, lines: lines(1, 5) });
    expect(await a.flush(5000)).toBe(true);
    await a.close();
    const b = new QueuedSink(new Scripted(), { dir: d, ...fast }).start();
    await b.write({ generation: "g", first: 1, lines: lines(1, 8) });
    expect(await b.flush(5000)).toBe(true);
    expect(b.stats()).toMatchObject({ sent: 8, deliveredLines: 3, duplicateLines: 5 });
    await b.close();
    expect(queueTotals(d)).toMatchObject({ sink: "scripted", kind: "test", sent: 8, dropped: 0 });
  });

  const root0 = process.getuid?.() === 0;
  test.skipIf(!root0)(
    "a full queue disk refuses the batch with SINK_QUEUE_WRITE and loses nothing accepted",
    async () => {
      const mnt = join(root, "tiny");
      mkdirSync(mnt);
      const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt]);
      expect(m.status).toBe(0);
      try {
        const dest = new Scripted();
        const s = new QueuedSink(dest, { dir: join(mnt, "q"), gzip: false, ...fast });
        await s.write({ generation: "g", first: 1, lines: lines(1, 10) });
        const huge = [JSON.stringify({ name: "q", pad: "y".repeat(512 * 1024) })];
        const err = await s.write({ generation: "g", first: 11, lines: huge }).catch((e) => e);
        expect(err).toMatchObject({ code: "SINK_QUEUE_WRITE" });
        expect(String(err.message)).toContain(join(mnt, "q"));
        // The caller still holds seq 11 (not acknowledged upstream); the queue kept 1-10 and takes 11 again later.
        expect(s.stats()).toMatchObject({ queued: 10, dropped: 0 });
        s.start();
        expect(await s.flush(5000)).toBe(true);
        await s.write({ generation: "g", first: 11, lines: lines(11, 1) });
        expect(await s.flush(5000)).toBe(true);
        expect(dest.seen.flatMap((x) => x.lines).map((l) => JSON.parse(l).columns.seq)).toEqual(
          Array.from({ length: 11 }, (_, i) => String(i + 1)),
        );
        await s.close();
      } finally {
        spawnSync("umount", [mnt]);
      }
    },
  );

  test("close with a grace lets what is queued reach a store that answers; without one it stays queued", async () => {
    // A store that answers once released, and gives up (retry) if the delivery is aborted first.
    class Gated implements Destination {
      readonly name = "gated";
      readonly kind = "test";
      delivered = 0;
      release!: () => void;
      private readonly gate = new Promise<void>((r) => {
        this.release = r;
      });
      async deliver(b: OutgoingBatch, signal: AbortSignal): Promise<Outcome> {
        const aborted = new Promise<"aborted">((r) => signal.addEventListener("abort", () => r("aborted")));
        if ((await Promise.race([this.gate, aborted])) === "aborted")
          return { kind: "retry", error: "aborted" };
        this.delivered += b.lines().length;
        return { kind: "done" };
      }
    }
    const graceful = new Gated();
    const g = new QueuedSink(graceful, { dir: dir(), ...fast }).start();
    await g.write({ generation: "g", first: 1, lines: lines(1, 3) });
    const closing = g.close(10_000);
    graceful.release();
    await closing;
    expect(graceful.delivered).toBe(3);
    expect(g.stats()).toMatchObject({ sent: 3, queued: 0 });

    const abrupt = new Gated();
    const a = new QueuedSink(abrupt, { dir: dir(), ...fast }).start();
    await a.write({ generation: "g", first: 1, lines: lines(1, 3) });
    await a.close();
    abrupt.release();
    expect(abrupt.delivered).toBe(0);
    expect(a.stats()).toMatchObject({ sent: 0, queued: 3 });
  });

  test("a store in backoff gets no grace: close returns at once and the queue stays for the next start", async () => {
    const down = new Scripted(
      Array.from({ length: 10 }, () => ({ kind: "retry" as const, error: "store down" })),
    );
    const s = new QueuedSink(down, { dir: dir(), minBackoffMs: 60_000, maxBackoffMs: 60_000 }).start();
    await s.write({ generation: "g", first: 1, lines: lines(1, 2) });
    while (s.stats().attempts === 0) await Bun.sleep(1);
    const started = performance.now();
    await s.close(30_000);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(s.stats()).toMatchObject({ sent: 0, queued: 2 });
  });
});
