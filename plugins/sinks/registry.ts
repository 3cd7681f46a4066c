/**
 * Sink kinds by type name. A kind brings its own config schema (validated
 * here, at the edge, with the config key it came from) and builds a
 * Destination; the shared QueuedSink gives each configured sink its own
 * queue directory, backoff and stats. Neither the core nor the query
 * feature names a kind: they pass a config section (`query.results`,
 * `events.sinks`) and get sinks back, so several can be on at once.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import type { Alert } from "../../core/agent/alerts.ts";
import { ConfigError } from "../../core/errors.ts";
import type { z } from "../../core/schema/zod.ts";
import { SinkQueueSettingsSchema } from "../../core/sink-queue-config.ts";
import { type Destination, type DropInfo, QueuedSink, queueTotals } from "./queued-sink.ts";

export interface SinkKind<C = unknown> {
  kind: string;
  schema: z.ZodMiniType<C>;
  destination(config: C): Destination;
}

const KINDS = new Map<string, SinkKind>();

export function registerSinkKind<C>(k: SinkKind<C>): void {
  KINDS.set(k.kind, k as SinkKind);
}

export function sinkKinds(): string[] {
  return [...KINDS.keys()].sort();
}

export interface BuildContext {
  /** Each sink queues in `<queueRoot>/<kind>`. */
  queueRoot: string;
  /** Where the section came from, for errors: "query.results". */
  where: string;
  /** The config file, for errors. */
  file?: string;
  onDrop?: (info: DropInfo) => void;
}

/**
 * The sinks a config section asks for: every key that names a registered kind.
 * `skip` lists keys the caller handles itself (e.g. the file and http sinks).
 */
export function buildSinks(
  section: Record<string, unknown>,
  ctx: BuildContext,
  skip: readonly string[] = [],
): QueuedSink[] {
  const sinks: QueuedSink[] = [];
  for (const [key, value] of Object.entries(section)) {
    if (skip.includes(key) || value === undefined) continue;
    const kind = KINDS.get(key);
    if (!kind || !value || typeof value !== "object")
      throw new ConfigError(
        "CFG_INVALID",
        `${ctx.where}.${key}: not a sink kind (known: ${sinkKinds().join(", ")})`,
        ctx.file ? { file: ctx.file } : {},
      );
    const { queueMaxBytes, maxBackoffSeconds, ...rest } = value as Record<string, unknown>;
    const q = SinkQueueSettingsSchema.safeParse({ queueMaxBytes, maxBackoffSeconds });
    const c = kind.schema.safeParse(rest);
    const issue = !q.success ? q.error.issues[0] : !c.success ? c.error.issues[0] : undefined;
    if (issue || !q.success || !c.success)
      throw new ConfigError(
        "CFG_INVALID",
        `${ctx.where}.${key}${issue?.path.length ? `.${issue.path.join(".")}` : ""}: ${issue?.message ?? "invalid"}`,
        ctx.file ? { file: ctx.file } : {},
      );
    sinks.push(
      new QueuedSink(kind.destination(c.data), {
        dir: join(ctx.queueRoot, key),
        queueMaxBytes: q.data.queueMaxBytes,
        maxBackoffMs: q.data.maxBackoffSeconds * 1000,
        ...(ctx.onDrop ? { onDrop: ctx.onDrop } : {}),
      }),
    );
  }
  return sinks;
}

/** What a drop is reported to: the agent's health board, event bus and alert sinks (each optional in tests). */
export interface DropTarget {
  health?: {
    raise(
      source: string,
      level: "red" | "amber" | "info",
      code: string,
      message: string,
      opts?: { ack?: boolean },
    ): unknown;
  };
  events?: { emit(type: string, fields?: Record<string, unknown>): unknown };
  /** The agent's alert path (`Agent.notify`: the event stream and every configured alert sink). */
  notify?(alert: Omit<Alert, "at" | "host" | "agentVersion" | "group">): void;
}

const MiB = 1024 * 1024;

/**
 * A queue cap reached is data lost for good: an amber health reason that
 * stays until an administrator acknowledges it (its message keeps the
 * running count), a `sink-dropped` event on the stream for every drop, and
 * — once per episode, at its first drop — a `sink-dropped` alert to the
 * agent's alert sinks with the sink and the counts. An episode ends when
 * the queue is empty again; the next drop after that alerts again.
 */
export function reportDrops(target: DropTarget): NonNullable<BuildContext["onDrop"]> {
  return (d) => {
    const cap = `${Math.round(d.queueMaxBytes / MiB)} MiB`;
    target.health?.raise(
      `sink:${d.sink}`,
      "amber",
      "SINK_QUEUE_DROPPED",
      `${d.sink}: queue cap (${cap}) reached, ${d.episodeDropped} lines dropped since ${d.episodeSince} (${d.totalDropped} by this process); the store has been unreachable too long`,
      { ack: true },
    );
    target.events?.emit("sink-dropped", {
      sink: d.sink,
      lines: d.lines,
      totalDropped: d.totalDropped,
      episodeDropped: d.episodeDropped,
      queued: d.queuedLines,
    });
    if (d.firstInEpisode)
      target.notify?.({
        kind: "sink-dropped",
        code: "SINK_QUEUE_DROPPED",
        file: d.dir,
        reason: `${d.sink}: queue cap (${cap}) reached; ${d.lines} oldest lines dropped, ${d.queuedLines} still queued. The store has been unreachable longer than the queue holds; later drops of this episode are counted in the health reason and metrics, not alerted again.`,
      });
  };
}

/** Lifetime totals of every queue directory under `roots` (what `agent query --stats` shows). */
export function persistedSinkTotals(
  roots: readonly string[],
): { sink: string; kind: string; sent: number; dropped: number; queued: number; queueDir: string }[] {
  const out: {
    sink: string;
    kind: string;
    sent: number;
    dropped: number;
    queued: number;
    queueDir: string;
  }[] = [];
  for (const dir of roots) {
    const direct = queueTotals(dir);
    if (direct) {
      out.push({ ...direct, queueDir: dir });
      continue;
    }
    let names: string[] = [];
    try {
      names = readdirSync(dir).sort();
    } catch {}
    for (const name of names) {
      const t = queueTotals(join(dir, name));
      if (t) out.push({ ...t, queueDir: join(dir, name) });
    }
  }
  return out;
}
