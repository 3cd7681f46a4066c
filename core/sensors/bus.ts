/**
 * The sensor bus (wave3 "Sensor bus"): kernel sensors in the supervisor
 * publish typed, flat events; consumers (a handler in a host group over
 * IPC, or a supervisor feature such as the process tagger) receive only
 * the types they subscribe to, in batches. Each consumer has its own
 * bounded queue and at most one delivery in flight: when a consumer is
 * slow its queue fills and further events for it are dropped and counted.
 * Publishing never waits, so a flood or a stuck consumer cannot block the
 * sensor, the supervisor, or the host whose open() we are answering.
 */
import { metrics } from "../metrics.ts";

export type SensorEvent = { type: string; time: number } & Record<string, string | number | boolean | null>;

export interface Consumer {
  name: string;
  /** Event types wanted; "*" for every type. Can change (setTypes) when content changes. */
  types: string[];
  deliver(batch: SensorEvent[]): Promise<unknown> | unknown;
  /** Events queued at most (default 10,000); beyond that new events are dropped and counted. */
  maxQueue?: number;
  /** Events per delivery at most (default 512). */
  batchMax?: number;
  /**
   * How long the first queued event may wait for others to share its delivery (default 0: the next
   * turn of the event loop). A full batch goes at once. For a consumer behind an IPC call, where a
   * delivery costs far more than an event: a shell script's burst of processes is one call, not ten.
   */
  lingerMs?: number;
}

export interface ConsumerStats {
  name: string;
  types: string[];
  delivered: number;
  dropped: number;
  failed: number;
  queued: number;
  lastError?: string;
}

const published = metrics.counter(
  "outpost_sensor_events_total",
  "Events published on the sensor bus, by type",
);
const droppedTotal = metrics.counter(
  "outpost_sensor_events_dropped_total",
  "Sensor events dropped because a consumer's queue was full, by consumer",
);

class Subscription {
  queue: SensorEvent[] = [];
  inFlight = false;
  scheduled = false;
  /** The linger timer of a scheduled delivery (lingerMs > 0). */
  timer: ReturnType<typeof setTimeout> | undefined;
  types: Set<string>;
  readonly stats: ConsumerStats;

  constructor(readonly c: Consumer) {
    this.types = new Set(c.types);
    this.stats = { name: c.name, types: c.types, delivered: 0, dropped: 0, failed: 0, queued: 0 };
  }

  wants(type: string): boolean {
    return this.types.has("*") || this.types.has(type);
  }
}

export class SensorBus {
  private readonly subs = new Map<string, Subscription>();
  private readonly perType = new Map<string, number>();
  /** Events per second over the last completed second (status). */
  private windowStart = Date.now();
  private windowCount = 0;
  private lastRate = 0;

  subscribe(c: Consumer): () => void {
    const s = new Subscription(c);
    this.subs.set(c.name, s);
    return () => {
      if (s.timer !== undefined) clearTimeout(s.timer);
      this.subs.delete(c.name);
    };
  }

  setTypes(name: string, types: string[]): void {
    const s = this.subs.get(name);
    if (!s) return;
    s.types = new Set(types);
    s.stats.types = types;
  }

  /** True when some consumer wants this type (sensors skip work nobody wants). */
  wanted(type: string): boolean {
    for (const s of this.subs.values()) if (s.wants(type)) return true;
    return false;
  }

  publish(events: SensorEvent[]): void {
    if (events.length === 0) return;
    this.count(events.length);
    for (const e of events) {
      published.inc({ type: e.type });
      this.perType.set(e.type, (this.perType.get(e.type) ?? 0) + 1);
    }
    for (const s of this.subs.values()) {
      const max = s.c.maxQueue ?? 10_000;
      let dropped = 0;
      for (const e of events) {
        if (!s.wants(e.type)) continue;
        if (s.queue.length >= max) dropped++;
        else s.queue.push(e);
      }
      if (dropped > 0) {
        s.stats.dropped += dropped;
        droppedTotal.inc({ consumer: s.c.name }, dropped);
      }
      this.schedule(s);
    }
  }

  private count(n: number): void {
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      this.lastRate = now - this.windowStart < 2000 ? this.windowCount : 0;
      this.windowStart = now;
      this.windowCount = 0;
    }
    this.windowCount += n;
  }

  /** Batches what one tick (or the consumer's linger) published into one delivery. */
  private schedule(s: Subscription): void {
    if (s.inFlight || s.queue.length === 0) return;
    const linger = s.c.lingerMs ?? 0;
    const full = s.queue.length >= (s.c.batchMax ?? 512);
    if (s.scheduled) {
      // A full batch does not wait out the linger.
      if (!full || s.timer === undefined) return;
      clearTimeout(s.timer);
      s.timer = undefined;
    }
    s.scheduled = true;
    const run = () => {
      s.scheduled = false;
      s.timer = undefined;
      void this.flush(s);
    };
    if (linger > 0 && !full) {
      s.timer = setTimeout(run, linger);
      s.timer.unref?.();
    } else setImmediate(run);
  }

  private async flush(s: Subscription): Promise<void> {
    if (s.inFlight || s.queue.length === 0) return;
    s.inFlight = true;
    const batch = s.queue.splice(0, s.c.batchMax ?? 512);
    try {
      await s.c.deliver(batch);
      s.stats.delivered += batch.length;
    } catch (e) {
      s.stats.failed += batch.length;
      s.stats.lastError = (e as Error).message;
    } finally {
      s.inFlight = false;
      this.schedule(s);
    }
  }

  /** Resolves when every queue is empty and nothing is in flight (tests, shutdown). */
  async drained(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ([...this.subs.values()].every((s) => s.queue.length === 0 && !s.inFlight)) return true;
      await Bun.sleep(5);
    }
    return false;
  }

  eventsPerSecond(): number {
    const since = Date.now() - this.windowStart;
    return since >= 2000 ? 0 : this.lastRate;
  }

  stats(): { eventsPerSecond: number; published: Record<string, number>; consumers: ConsumerStats[] } {
    return {
      eventsPerSecond: this.eventsPerSecond(),
      published: Object.fromEntries(this.perType),
      consumers: [...this.subs.values()].map((s) => ({ ...s.stats, queued: s.queue.length })),
    };
  }
}
