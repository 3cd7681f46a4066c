import { describe, expect, test } from "bun:test";
import { type BatchItem, ScanBatcher } from "./on-access-batch.ts";
import type { ScanReport } from "./scan/service.ts";

const report = (name: string) => ({ targets: [name], detections: [] }) as unknown as ScanReport;
const item = (name: string, bytes = 10): BatchItem => ({ name, bytes: new Uint8Array(bytes) });

/** A scanner whose calls finish only when the test says so. */
function controlled() {
  const calls: { names: string[]; finish: () => void; fail: (e: Error) => void }[] = [];
  const singles: string[] = [];
  const batcher = new ScanBatcher({
    maxItems: 4,
    maxBytes: 100,
    maxInFlight: 2,
    scanMany: (items) =>
      new Promise((resolve, reject) => {
        calls.push({
          names: items.map((i) => i.name),
          finish: () => resolve(items.map((i) => report(i.name))),
          fail: reject,
        });
      }),
    scanOne: async (i) => {
      singles.push(i.name);
      return report(i.name);
    },
  });
  return { batcher, calls, singles };
}

describe("ScanBatcher", () => {
  test("opens waiting go out at once; more wait for a free slot and then share one call", async () => {
    const { batcher, calls } = controlled();
    const a = batcher.submit(item("a"), true).report;
    const b = batcher.submit(item("b"), true).report;
    expect(calls.map((c) => c.names)).toEqual([["a"], ["b"]]);
    const rest = ["c", "d", "e", "f", "g"].map((n) => batcher.submit(item(n), true).report);
    expect(calls).toHaveLength(2); // two in flight: the rest queue
    calls[0]!.finish();
    expect((await a).targets).toEqual(["a"]);
    expect(calls[2]!.names).toEqual(["c", "d", "e", "f"]); // maxItems 4
    calls[1]!.finish();
    await b;
    expect(calls[3]!.names).toEqual(["g"]);
    calls[2]!.finish();
    calls[3]!.finish();
    expect((await Promise.all(rest)).map((r) => r.targets[0])).toEqual(["c", "d", "e", "f", "g"]);
  });

  test("background jobs go out only when nothing else is; urgent ones first; promote moves one up", async () => {
    const { batcher, calls } = controlled();
    const bg = ["r1", "r2", "r3", "r4", "r5", "r6"].map((n) => batcher.submit(item(n), false));
    expect(calls).toHaveLength(0); // sent together once the burst is queued
    await Promise.resolve();
    expect(calls.map((c) => c.names)).toEqual([["r1", "r2", "r3", "r4"]]);
    const open = batcher.submit(item("open"), true);
    expect(calls[1]!.names).toEqual(["open", "r5", "r6"]); // an urgent batch fills up with background
    calls[0]!.finish();
    calls[1]!.finish();
    await Promise.all([...bg.map((j) => j.report), open.report]);

    const more = ["s1", "s2", "s3", "s4", "s5", "s6"].map((n) => batcher.submit(item(n), false));
    await Promise.resolve();
    expect(calls[2]!.names).toEqual(["s1", "s2", "s3", "s4"]);
    expect(calls).toHaveLength(3); // background waits while a batch is out
    batcher.promote(more[5]!.job);
    expect(calls[3]!.names).toEqual(["s6", "s5"]);
    calls[2]!.finish();
    calls[3]!.finish();
    await Promise.all(more.map((j) => j.report));
    expect(batcher.counters).toEqual({ batches: 4, batchedFiles: 13 });
  });

  test("bytes bound a batch; a large object goes alone through scanOne; a failed call fails its jobs", async () => {
    const { batcher, calls, singles } = controlled();
    const big = batcher.submit(item("big", 101), true).report;
    expect((await big).targets).toEqual(["big"]);
    expect(singles).toEqual(["big"]);
    const jobs = ["a", "b", "c"].map((n) => batcher.submit(item(n, 40), true).report);
    expect(calls.map((c) => c.names)).toEqual([["a"], ["b"]]);
    calls[0]!.fail(new Error("host down"));
    await expect(jobs[0]!).rejects.toThrow("host down");
    expect(calls[2]!.names).toEqual(["c"]);
    calls[1]!.finish();
    calls[2]!.finish();
    await Promise.all(jobs.slice(1));
    expect(batcher.queued).toBe(0);
  });
});
