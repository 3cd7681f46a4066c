/**
 * `events.sinks`: the agent's events (detections, updates, rejections,
 * health changes…) into the same sink kinds as query results, so the SOC
 * reads one stream. Each event becomes an osquery-shaped line (name
 * "outpost_event", action = event type, columns = the event's fields) and
 * its bus id is its seq: ids are consecutive within a process and keep
 * growing across restarts (core/agent/events.ts), so one generation
 * ("events") and the sinks' usual skip-what-you-hold rule apply unchanged.
 *
 * Events are buffered for `flushMs` and written as runs of consecutive
 * ids; a write that fails (queue disk full) keeps them buffered for the
 * next flush, up to `maxBuffered` (the excess is counted in `lost`).
 */
import { hostname } from "node:os";
import { join } from "node:path";
import type { AgentConfig } from "../../core/config.ts";
import { log as rootLog } from "../../core/log.ts";
import { metrics as defaultMetrics, type MetricsRegistry } from "../../core/metrics.ts";
import { ticker } from "../../core/ticker.ts";
import { buildSinks } from "./kinds.ts";
import type { QueuedSink } from "./queued-sink.ts";
import { type DropTarget, reportDrops } from "./registry.ts";

interface Bus {
  subscribe(fn: (e: { type: string; at: string; [k: string]: unknown }, id: number) => void): () => void;
}

const GENERATION = "events";

/** osquery's calendarTime: "Thu Dec  3 18:00:00 2026 UTC". */
function calendarTime(d: Date): string {
  const s = d.toUTCString(); // "Thu, 03 Dec 2026 18:00:00 GMT"
  const [wd, day, mon, year, time] = s.replace(",", "").split(" ");
  return `${wd} ${mon} ${String(Number(day)).padStart(2, " ")} ${time} ${year} UTC`;
}

export function eventLine(
  e: { type: string; at: string; [k: string]: unknown },
  id: number,
  host: string,
): string {
  const { type, at, ...fields } = e;
  const when = new Date(at);
  return JSON.stringify({
    name: "outpost_event",
    hostIdentifier: host,
    calendarTime: calendarTime(when),
    unixTime: Math.floor(when.getTime() / 1000),
    epoch: 0,
    counter: id,
    action: type,
    columns: fields,
    decorations: {},
  });
}

export class EventSinksService {
  readonly name = "event-sinks";
  private readonly log = rootLog.child({ component: "event-sinks" });
  private buffer: { id: number; line: string }[] = [];
  private unsubscribe?: () => void;
  private stopTimer?: () => void;
  private flushing: Promise<void> = Promise.resolve();
  readonly counters = { events: 0, lost: 0, writeErrors: 0 };
  private readonly m;

  constructor(
    private readonly opts: {
      sinks: QueuedSink[];
      bus: Bus;
      host: string;
      flushMs?: number;
      maxBuffered?: number;
      /** How long stop() waits for queued events to be delivered. */
      stopGraceMs?: number;
      metrics?: MetricsRegistry;
    },
  ) {
    const reg = opts.metrics ?? defaultMetrics;
    this.m = {
      lines: reg.gauge(
        "outpost_event_sink_lines",
        "Event lines per sink and state (sent, dropped, queued, retried)",
      ),
    };
  }

  start(): void {
    for (const s of this.opts.sinks) s.start();
    this.unsubscribe = this.opts.bus.subscribe((e, id) => {
      this.counters.events++;
      this.buffer.push({ id, line: eventLine(e, id, this.opts.host) });
      const max = this.opts.maxBuffered ?? 10_000;
      if (this.buffer.length > max) {
        this.counters.lost += this.buffer.length - max;
        this.buffer = this.buffer.slice(-max);
      }
    });
    this.stopTimer = ticker.every(this.opts.flushMs ?? 1000, () => {
      this.flush().catch(() => {});
    });
  }

  /** Writes what is buffered to every sink (runs of consecutive ids as batches). */
  flush(): Promise<void> {
    const run = this.flushing.then(() => this.flushNow());
    this.flushing = run.catch(() => {});
    return run;
  }

  private async flushNow(): Promise<void> {
    const pending = this.buffer;
    if (pending.length === 0) return this.refreshMetrics();
    this.buffer = [];
    const runs: { first: number; lines: string[] }[] = [];
    for (const { id, line } of pending) {
      const last = runs.at(-1);
      if (last && last.first + last.lines.length === id) last.lines.push(line);
      else runs.push({ first: id, lines: [line] });
    }
    try {
      for (const r of runs)
        for (const s of this.opts.sinks)
          await s.write({ generation: GENERATION, first: r.first, lines: r.lines });
    } catch (e) {
      // Sinks skip what they already hold, so writing the whole buffer again next time is safe.
      this.counters.writeErrors++;
      this.buffer = [...pending, ...this.buffer];
      this.log.warn("event sinks could not queue events; keeping them for the next flush", {
        reason: (e as Error).message,
      });
    }
    this.refreshMetrics();
  }

  private refreshMetrics(): void {
    for (const st of this.stats()) {
      for (const state of ["sent", "dropped", "queued", "retried"] as const)
        this.m.lines.set({ sink: st.name, state }, st[state]);
    }
  }

  stats() {
    return this.opts.sinks.map((s) => s.stats());
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.stopTimer?.();
    await this.flush().catch(() => {});
    // A short grace for what is queued (shutdown events are the interesting ones); the rest stays queued.
    await Promise.all(this.opts.sinks.map((s) => s.flush(this.opts.stopGraceMs ?? 2000)));
    await Promise.all(this.opts.sinks.map((s) => s.close()));
  }
}

/** The `agent run` service for `events.sinks` (none when the section is empty). */
export function eventSinkServices(ctx: {
  config: AgentConfig;
  events: Bus & NonNullable<DropTarget["events"]>;
  api: Pick<DropTarget, "health" | "notify">;
}): EventSinksService[] {
  const section = ctx.config.events.sinks;
  if (Object.keys(section).length === 0) return [];
  const sinks = buildSinks(section, {
    queueRoot: join(ctx.config.stateDir, "event-sinks"),
    where: "events.sinks",
    onDrop: reportDrops({
      health: ctx.api.health,
      events: ctx.events,
      notify: (a) => ctx.api.notify?.(a),
    }),
  });
  return [
    new EventSinksService({ sinks, bus: ctx.events, host: ctx.config.query.hostIdentifier ?? hostname() }),
  ];
}
