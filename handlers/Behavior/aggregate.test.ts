import { describe, expect, test } from "bun:test";
import { AggregationSchema, MAX_KEYS, SubscriptionFilter } from "./aggregate.ts";

const ev = (fields: Record<string, string | number>) => ({ type: "file.write", ...fields });

describe("sensor-side aggregation", () => {
  test("coalesce: identical events within the window are delivered once, by key or by all fields but time", () => {
    const byKey = new SubscriptionFilter({ coalesce: { window: 10, key: ["path"] } });
    expect(byKey.admit(ev({ path: "/a", pid: 1 }), 0)).toBe(true);
    expect(byKey.admit(ev({ path: "/a", pid: 2 }), 5_000)).toBe(false);
    expect(byKey.admit(ev({ path: "/b", pid: 1 }), 5_000)).toBe(true);
    expect(byKey.admit(ev({ path: "/a", pid: 3 }), 10_001)).toBe(true);
    expect(byKey.counters).toMatchObject({ seen: 4, delivered: 3, coalesced: 1 });

    const whole = new SubscriptionFilter({ coalesce: { window: 10 } });
    expect(whole.admit({ ...ev({ path: "/a" }), time: 1 }, 1)).toBe(true);
    expect(whole.admit({ ...ev({ path: "/a" }), time: 2 }, 2)).toBe(false);
    expect(whole.admit({ ...ev({ path: "/a", pid: 9 }), time: 3 }, 3)).toBe(true);
  });

  test("min_rate: events below the rate are discarded; a burst is delivered while it lasts", () => {
    const f = new SubscriptionFilter({ min_rate: { count: 3, window: 10, key: ["pid"] } });
    const out = [0, 1000, 2000, 3000, 20_000, 21_000].map((t) => f.admit(ev({ pid: 7 }), t));
    expect(out).toEqual([false, false, true, true, false, false]);
    expect(f.admit(ev({ pid: 8 }), 3500)).toBe(false);
    expect(f.counters.belowRate).toBe(5);
  });

  test("first: at most n per key per window; without a window for the rules' lifetime", () => {
    const windowed = new SubscriptionFilter({ first: { n: 2, window: 60, key: ["exe"] } });
    const got = [0, 1, 2, 60_000, 60_001, 60_002].map((t) => windowed.admit(ev({ exe: "x" }), t));
    expect(got).toEqual([true, true, false, true, true, false]);
    const forever = new SubscriptionFilter({ first: { n: 1 } });
    expect([0, 1e9].map((t) => forever.admit(ev({}), t))).toEqual([true, false]);
  });

  test("stages combine in order, and per-key state is bounded", () => {
    const f = new SubscriptionFilter({
      min_rate: { count: 2, window: 10, key: ["pid"] },
      first: { n: 1, key: ["pid"] },
    });
    expect([0, 1, 2].map((t) => f.admit(ev({ pid: 1 }), t))).toEqual([false, true, false]);
    const many = new SubscriptionFilter({ coalesce: { window: 1000, key: ["path"] } });
    for (let i = 0; i < MAX_KEYS + 5; i++) many.admit(ev({ path: `/p${i}` }), 0);
    // The first key was forgotten, so it is delivered again inside its window.
    expect(many.admit(ev({ path: "/p0" }), 1)).toBe(true);
    expect(many.admit(ev({ path: `/p${MAX_KEYS + 4}` }), 1)).toBe(false);
  });

  test("options are validated strictly", () => {
    expect(AggregationSchema.safeParse({ coalesce: { window: 0 } }).success).toBe(false);
    expect(AggregationSchema.safeParse({ typo: {} }).success).toBe(false);
    expect(AggregationSchema.safeParse({ first: { n: 5, key: ["exe"] } }).success).toBe(true);
  });
});
