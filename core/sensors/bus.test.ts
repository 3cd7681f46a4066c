import { describe, expect, test } from "bun:test";
import { SensorBus, type SensorEvent } from "./bus.ts";

const ev = (type: string, i: number): SensorEvent => ({ type, time: i, pid: i });

describe("sensor bus", () => {
  test("a consumer gets only its types, in batches, in order", async () => {
    const bus = new SensorBus();
    const got: SensorEvent[][] = [];
    bus.subscribe({ name: "b", types: ["file.write"], deliver: (b) => void got.push(b), batchMax: 3 });
    bus.publish([ev("process.start", 1), ev("file.write", 2), ev("file.write", 3)]);
    bus.publish([ev("file.write", 4), ev("file.write", 5)]);
    expect(await bus.drained()).toBe(true);
    expect(got.flat().map((e) => e.pid)).toEqual([2, 3, 4, 5]);
    expect(got.every((b) => b.length <= 3)).toBe(true);
  });

  test("a flood into a stuck consumer: publish never waits, the queue stays bounded, drops are counted", () => {
    const bus = new SensorBus();
    bus.subscribe({ name: "stuck", types: ["*"], deliver: () => new Promise(() => {}), maxQueue: 1000 });
    const t0 = performance.now();
    for (let i = 0; i < 100; i++)
      bus.publish(Array.from({ length: 1000 }, (_, j) => ev("process.start", i * 1000 + j)));
    const ms = performance.now() - t0;
    const s = bus.stats().consumers[0]!;
    expect(s.queued).toBeLessThanOrEqual(1000);
    expect(s.dropped).toBe(100_000 - 1000);
    expect(ms).toBeLessThan(5000);
  });

  test("a consumer that throws is counted and keeps receiving", async () => {
    const bus = new SensorBus();
    let calls = 0;
    bus.subscribe({
      name: "flaky",
      types: ["x"],
      deliver: () => {
        calls++;
        if (calls === 1) throw new Error("host down");
      },
    });
    bus.publish([ev("x", 1)]);
    await bus.drained();
    bus.publish([ev("x", 2)]);
    await bus.drained();
    expect(bus.stats().consumers[0]).toMatchObject({ failed: 1, delivered: 1, lastError: "host down" });
  });

  test("setTypes changes what a consumer receives", async () => {
    const bus = new SensorBus();
    const got: SensorEvent[] = [];
    bus.subscribe({ name: "c", types: [], deliver: (b) => void got.push(...b) });
    bus.publish([ev("a", 1)]);
    bus.setTypes("c", ["a"]);
    expect(bus.wanted("a")).toBe(true);
    bus.publish([ev("a", 2)]);
    await bus.drained();
    expect(got.map((e) => e.pid)).toEqual([2]);
  });
  test("lingerMs: events published apart within the linger share one delivery; a full batch does not wait", async () => {
    const bus = new SensorBus();
    const got: { at: number; pids: number[] }[] = [];
    bus.subscribe({
      name: "l",
      types: ["*"],
      deliver: (b) => void got.push({ at: performance.now(), pids: b.map((e) => e.pid as number) }),
      batchMax: 4,
      lingerMs: 200,
    });
    const start = performance.now();
    // Three publishes on separate event-loop turns: without the linger, three deliveries.
    bus.publish([ev("a", 1)]);
    await Bun.sleep(1);
    bus.publish([ev("a", 2)]);
    await Bun.sleep(1);
    bus.publish([ev("a", 3)]);
    expect(await bus.drained()).toBe(true);
    expect(got.map((g) => g.pids)).toEqual([[1, 2, 3]]);
    expect(got[0]!.at - start).toBeGreaterThanOrEqual(190);
    // Four at once fill the batch: delivered on the next turn, not after 200 ms.
    const t0 = performance.now();
    bus.publish([ev("a", 4), ev("a", 5), ev("a", 6), ev("a", 7)]);
    expect(await bus.drained()).toBe(true);
    expect(got.at(-1)!.pids).toEqual([4, 5, 6, 7]);
    expect(got.at(-1)!.at - t0).toBeLessThan(150);
  });

  test("lingerMs: a batch that fills while its linger runs goes at once", async () => {
    const bus = new SensorBus();
    const got: number[][] = [];
    bus.subscribe({
      name: "l",
      types: ["*"],
      deliver: (b) => void got.push(b.map((e) => e.pid as number)),
      batchMax: 3,
      lingerMs: 10_000,
    });
    const t0 = performance.now();
    bus.publish([ev("a", 1)]);
    await Bun.sleep(1);
    bus.publish([ev("a", 2), ev("a", 3)]);
    expect(await bus.drained(5000)).toBe(true);
    expect(got).toEqual([[1, 2, 3]]);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});
