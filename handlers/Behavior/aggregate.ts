/**
 * Sensor-side aggregation: a rule subscribing to a high-volume event type
 * can ask the sensor to coalesce or discard events before they cross into
 * Lua. Declared per subscription in `on(type, fn, opts)`:
 *
 *   coalesce = { window = 5, key = {"pid", "path"} }   identical events (same key fields; default: all
 *                                                      fields but time) within `window` s are delivered once
 *   min_rate = { count = 20, window = 10, key = {"uid"} }  deliver only while at least `count` events with the
 *                                                      same key arrived within the last `window` s
 *   first    = { n = 100, window = 3600, key = {"exe"} }   at most `n` events per key per window
 *                                                      (no window: for as long as the rules are loaded)
 *
 * Stages apply in that order. Time is the event's `time` (ms), so replays
 * of recorded streams aggregate exactly as they did live. Per-key state is
 * bounded: the oldest keys are forgotten first.
 */

import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import type { FlatEvent } from "./codec.ts";

const KeySchema = lazySchema(() =>
  z.array(z.string().check(z.minLength(1), z.maxLength(64))).check(z.minLength(1), z.maxLength(16)),
);
const Seconds = lazySchema(() => z.number().check(z.positive(), z.lte(365 * 86400)));

export const AggregationSchema = lazySchema(() =>
  z.strictObject({
    coalesce: z.optional(z.strictObject({ window: Seconds, key: z.optional(KeySchema) })),
    min_rate: z.optional(
      z.strictObject({
        count: z.int().check(z.gte(1), z.lte(1_000_000)),
        window: Seconds,
        key: z.optional(KeySchema),
      }),
    ),
    first: z.optional(
      z.strictObject({
        n: z.int().check(z.gte(1), z.lte(1_000_000)),
        window: z.optional(Seconds),
        key: z.optional(KeySchema),
      }),
    ),
  }),
);
export type Aggregation = z.infer<typeof AggregationSchema>;

export const MAX_KEYS = 10_000;

export interface AggregationCounters {
  seen: number;
  delivered: number;
  coalesced: number;
  belowRate: number;
  overLimit: number;
}

const IGNORED_IN_IDENTITY = new Set(["time", "seq"]);

function keyOf(event: FlatEvent, fields: string[] | undefined): string {
  if (fields) return fields.map((f) => String(event[f] ?? "")).join("\u0000");
  return Object.keys(event)
    .filter((k) => !IGNORED_IN_IDENTITY.has(k))
    .sort()
    .map((k) => `${k}=${String(event[k])}`)
    .join("\u0000");
}

/** A Map that forgets its oldest entries beyond `max`. */
class BoundedMap<V> extends Map<string, V> {
  constructor(private readonly max: number) {
    super();
  }
  override set(k: string, v: V): this {
    if (!this.has(k) && this.size >= this.max) {
      const oldest = this.keys().next().value;
      if (oldest !== undefined) this.delete(oldest);
    }
    return super.set(k, v);
  }
}

export class SubscriptionFilter {
  readonly counters: AggregationCounters = {
    seen: 0,
    delivered: 0,
    coalesced: 0,
    belowRate: 0,
    overLimit: 0,
  };
  private readonly lastDelivered = new BoundedMap<number>(MAX_KEYS);
  private readonly recent = new BoundedMap<number[]>(MAX_KEYS);
  private readonly quota = new BoundedMap<{ start: number; n: number }>(MAX_KEYS);

  constructor(readonly spec: Aggregation) {}

  /** Whether this subscription receives the event (at event time `t`, ms). */
  admit(event: FlatEvent, t: number): boolean {
    const { spec, counters } = this;
    counters.seen++;
    if (spec.coalesce) {
      const k = keyOf(event, spec.coalesce.key);
      const last = this.lastDelivered.get(k);
      if (last !== undefined && t - last < spec.coalesce.window * 1000) {
        counters.coalesced++;
        return false;
      }
      // Refresh insertion order so an active key is not the first forgotten.
      this.lastDelivered.delete(k);
      this.lastDelivered.set(k, t);
    }
    if (spec.min_rate) {
      const k = keyOf(event, spec.min_rate.key ?? ["type"]);
      const windowMs = spec.min_rate.window * 1000;
      const times = this.recent.get(k) ?? [];
      times.push(t);
      while (times.length > 0 && t - times[0]! >= windowMs) times.shift();
      if (times.length > spec.min_rate.count) times.shift();
      this.recent.delete(k);
      this.recent.set(k, times);
      if (times.length < spec.min_rate.count) {
        counters.belowRate++;
        return false;
      }
    }
    if (spec.first) {
      const k = keyOf(event, spec.first.key ?? ["type"]);
      let q = this.quota.get(k);
      if (!q || (spec.first.window !== undefined && t - q.start >= spec.first.window * 1000)) {
        q = { start: t, n: 0 };
        this.quota.set(k, q);
      }
      if (q.n >= spec.first.n) {
        counters.overLimit++;
        return false;
      }
      q.n++;
    }
    counters.delivered++;
    return true;
  }
}
