/**
 * events.sinks: agent events from the real event bus become osquery-shaped
 * lines, written as runs of consecutive bus ids; a restart (new bus, larger
 * ids) carries on in the same generation, and nothing is sent twice.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventBus } from "../../core/agent/events.ts";
import { MetricsRegistry } from "../../core/metrics.ts";
import { EventSinksService, eventLine } from "./events-service.ts";
import { type Destination, type Outcome, type OutgoingBatch, QueuedSink } from "./queued-sink.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-events-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

class Recorder implements Destination {
  readonly name = "recorder";
  readonly kind = "test";
  readonly batches: { key: string; lines: string[] }[] = [];
  async deliver(b: OutgoingBatch): Promise<Outcome> {
    this.batches.push({ key: b.key, lines: b.lines() });
    return { kind: "done" };
  }
}

describe("event sinks", () => {
  test("an event is an osquery-shaped line: action = type, columns = fields, counter = bus id", () => {
    const line = JSON.parse(
      eventLine(
        { type: "update-rejected", at: "2026-12-03T18:00:05.000Z", code: "SIG_EXPIRED", contentType: "X" },
        42,
        "h",
      ),
    );
    expect(line).toEqual({
      name: "outpost_event",
      hostIdentifier: "h",
      calendarTime: "Thu Dec  3 18:00:05 2026 UTC",
      unixTime: 1796320805,
      epoch: 0,
      counter: 42,
      action: "update-rejected",
      columns: { code: "SIG_EXPIRED", contentType: "X" },
      decorations: {},
    });
  });

  test("events reach the sink in order, once, across a restart of the agent", async () => {
    const dir = join(root, "q");
    const rec = new Recorder();
    const run = async (firstId: number, types: string[]) => {
      const bus = new EventBus(200, { firstId });
      const svc = new EventSinksService({
        sinks: [new QueuedSink(rec, { dir, minBackoffMs: 1 })],
        bus,
        host: "h",
        flushMs: 60_000,
        metrics: new MetricsRegistry(),
      });
      svc.start();
      for (const t of types) bus.emit(t, { n: t });
      await svc.stop();
    };
    await run(1000, ["a", "b", "c"]);
    await run(5000, ["d", "e"]);
    const all = rec.batches.flatMap((b) =>
      b.lines.map((l) => JSON.parse(l) as { action: string; counter: number }),
    );
    expect(all.map((l) => [l.action, l.counter])).toEqual([
      ["a", 1000],
      ["b", 1001],
      ["c", 1002],
      ["d", 5000],
      ["e", 5001],
    ]);
    expect(rec.batches.map((b) => b.key)).toEqual(["events:1000-1002", "events:5000-5001"]);
  });
});
