/**
 * The durable half every network sink shares, so each destination only
 * says how to deliver one batch.
 *
 * `write` stores a batch in an on-disk queue (gzip'd JSON lines, one file
 * per batch) before it resolves — the caller may then acknowledge the lines
 * upstream. One sender hands queued batches to the `Destination` in order,
 * one at a time, each with the idempotency key `<generation>:<first>-<last>`:
 * a batch is only deleted after the destination answered `done`; `retry`
 * backs off exponentially with full jitter (a destination's retryAfter wins
 * when longer) and delivers the same batch with the same key again, which
 * the destination uses to store it once; `rejected` (the store refused this
 * batch itself) moves it to `rejected/` so it cannot block the queue. The
 * queue is capped: past the cap the oldest batches are dropped, counted and
 * reported through `onDrop` (the service raises a health reason and, once
 * per drop episode, an alert) rather than filling the disk. An episode runs
 * from the first drop until the queue is empty again (the store caught up),
 * and is kept in the cursor, so a restart in the middle does not alert twice. A queue write that fails (disk full) rejects
 * `write` with SINK_QUEUE_WRITE: the caller does not acknowledge, so the
 * lines stay upstream and nothing accepted is lost.
 */
import { readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { OutpostError } from "../../core/errors.ts";
import { atomicWriteFile, atomicWriteJson } from "../../core/fsutil.ts";
import { log } from "../../core/log.ts";
import type { Destination, Outcome, OutgoingBatch } from "./destination.ts";
import { bodyFileName, type Cursor, openQueueDir, type QueuedBody } from "./queue-dir.ts";
import type { ResultBatch, ResultsSink, SinkStats } from "./results.ts";
import { unseen } from "./results.ts";

export type { Destination, Outcome, OutgoingBatch } from "./destination.ts";
export { queueTotals } from "./queue-dir.ts";

export interface QueueOptions {
  /** Queue directory (survives restarts). */
  dir: string;
  gzip?: boolean;
  queueMaxBytes?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  random?: () => number;
  /** Called after the cap dropped batches. */
  onDrop?: (info: DropInfo) => void;
}

/** What a drop by the queue's cap reports. */
export interface DropInfo {
  sink: string;
  kind: string;
  /** Queue directory. */
  dir: string;
  /** Lines dropped just now. */
  lines: number;
  /** Lines this process dropped so far. */
  totalDropped: number;
  /** Lines dropped since this episode began (first drop after the queue was last empty). */
  episodeDropped: number;
  /** True for the drop that began the episode: the one to alert on. */
  firstInEpisode: boolean;
  episodeSince: string;
  /** Lines still queued, and the cap. */
  queuedLines: number;
  queueMaxBytes: number;
}

const MAX_GENERATIONS = 16;

export interface QueuedSinkStats extends SinkStats {
  /**
   * Contract names (docs/sinks.md): `sent` and `dropped` are lifetime totals of this queue (they
   * survive restarts); `queued` lines waiting; `retried` delivery attempts that failed and will be
   * repeated. The *Lines fields count this process only.
   */
  sent: number;
  dropped: number;
  queued: number;
  retried: number;
  requests: number;
  attempts: number;
  destination?: Record<string, number>;
}

export class QueuedSink implements ResultsSink {
  readonly name: string;
  readonly kind: string;
  private readonly dir: string;
  private readonly opts: Required<Omit<QueueOptions, "onDrop">> & Pick<QueueOptions, "onDrop">;
  private readonly queue: QueuedBody[] = [];
  private cursor: Cursor;
  private order = 0;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  /** Ends the idle wait (new body queued, or close). */
  private wake?: () => void;
  /** Ends a backoff wait early (retryNow, or close). */
  private interrupt?: () => void;
  private sender?: Promise<void>;
  private readonly idleWaiters = new Set<() => void>();
  private readonly counters = {
    accepted: 0,
    duplicates: 0,
    delivered: 0,
    dropped: 0,
    failures: 0,
    retried: 0,
    requests: 0,
  };
  private lastError: string | null = null;
  private lastDeliveryAt: string | null = null;
  /** Consecutive failed attempts of the body at the head of the queue. */
  private attempts = 0;
  /** Aborts an in-flight delivery on close. */
  private readonly closing = new AbortController();

  constructor(
    readonly destination: Destination,
    opts: QueueOptions,
  ) {
    this.name = destination.name;
    this.kind = destination.kind;
    this.dir = opts.dir;
    this.opts = {
      dir: opts.dir,
      gzip: opts.gzip ?? true,
      queueMaxBytes: opts.queueMaxBytes ?? 256 * 1024 * 1024,
      minBackoffMs: opts.minBackoffMs ?? 1000,
      maxBackoffMs: opts.maxBackoffMs ?? 300_000,
      random: opts.random ?? Math.random,
      onDrop: opts.onDrop,
    };
    const { cursor, bodies } = openQueueDir(this.dir);
    this.cursor = cursor;
    this.queue.push(...bodies);
    this.order = this.queue.at(-1)?.order ?? 0;
    this.cursor.totals ??= { sent: 0, dropped: 0 };
  }

  private saveCursor(): void {
    this.cursor.sink = this.name;
    this.cursor.kind = this.kind;
    atomicWriteJson(join(this.dir, "cursor.json"), this.cursor, 0o600);
  }

  /** Starts delivering in the background. */
  start(): this {
    this.sender ??= this.sendLoop();
    return this;
  }

  /** Highest seq of a generation held (queued or delivered). */
  private held(generation: string): number {
    let last = this.cursor.delivered[generation] ?? 0;
    for (const b of this.queue) if (b.generation === generation && b.last > last) last = b.last;
    return last;
  }

  write(batch: ResultBatch): Promise<void> {
    const run = this.chain.then(() => this.enqueue(batch));
    this.chain = run.catch(() => {});
    return run;
  }

  private enqueue(batch: ResultBatch): void {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(batch.generation))
      throw new Error(`bad outbox generation ${batch.generation}`);
    const fresh = unseen(batch, this.held(batch.generation));
    this.counters.duplicates += batch.lines.length - fresh.lines.length;
    if (fresh.lines.length === 0) return;
    const last = fresh.first + fresh.lines.length - 1;
    const text = Buffer.from(`${fresh.lines.join("\n")}\n`);
    const data = this.opts.gzip ? Bun.gzipSync(text) : text;
    const order = this.order + 1;
    const name = bodyFileName(order, batch.generation, fresh.first, last, this.opts.gzip);
    const file = join(this.dir, name);
    try {
      atomicWriteFile(file, data, 0o600);
    } catch (e) {
      // Disk full or read-only: refuse the batch so the caller keeps it (it is not acknowledged upstream).
      rmSync(`${file}.tmp`, { force: true });
      this.fail(`queue write failed: ${(e as Error).message}`);
      throw new OutpostError(
        "SINK_QUEUE_WRITE",
        `${this.name}: cannot queue ${fresh.lines.length} result lines in ${this.dir}: ${(e as Error).message}; they stay in the outbox and are offered again`,
        { file, cause: e },
      );
    }
    this.order = order;
    this.queue.push({
      file,
      order,
      generation: batch.generation,
      first: fresh.first,
      last,
      bytes: data.length,
    });
    this.counters.accepted += fresh.lines.length;
    this.enforceCap();
    this.wake?.();
  }

  private enforceCap(): void {
    let bytes = this.queuedBytes();
    let droppedNow = 0;
    // The newest body always stays: dropping what was just accepted would be silent loss.
    while (bytes > this.opts.queueMaxBytes && this.queue.length > 1) {
      const oldest = this.queue.shift()!;
      rmSync(oldest.file, { force: true });
      bytes -= oldest.bytes;
      droppedNow += oldest.last - oldest.first + 1;
      this.attempts = 0;
    }
    if (droppedNow === 0) return;
    this.counters.dropped += droppedNow;
    this.cursor.totals!.dropped += droppedNow;
    const firstInEpisode = !this.cursor.dropEpisode;
    const episode = this.cursor.dropEpisode ?? { since: new Date().toISOString(), dropped: 0 };
    episode.dropped += droppedNow;
    this.cursor.dropEpisode = episode;
    this.saveCursor();
    log.warn("results queue full: dropped the oldest batches", {
      sink: this.name,
      lines: droppedNow,
      queueMaxBytes: this.opts.queueMaxBytes,
    });
    this.opts.onDrop?.({
      sink: this.name,
      kind: this.kind,
      dir: this.dir,
      lines: droppedNow,
      totalDropped: this.counters.dropped,
      episodeDropped: episode.dropped,
      firstInEpisode,
      episodeSince: episode.since,
      queuedLines: this.queue.reduce((n, b) => n + (b.last - b.first + 1), 0),
      queueMaxBytes: this.opts.queueMaxBytes,
    });
  }

  private queuedBytes(): number {
    return this.queue.reduce((n, b) => n + b.bytes, 0);
  }

  private async sendLoop(): Promise<void> {
    while (!this.closed) {
      const head = this.queue[0];
      if (!head) {
        for (const w of this.idleWaiters) w();
        this.idleWaiters.clear();
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = undefined;
        continue;
      }
      const outcome = await this.deliver(head);
      if (outcome.kind === "retry") {
        this.attempts++;
        const exp = Math.min(
          this.opts.maxBackoffMs,
          this.opts.minBackoffMs * 2 ** Math.min(this.attempts - 1, 20),
        );
        // Full jitter keeps a fleet that lost its store at the same moment from returning in lock-step.
        const wait = Math.max(
          outcome.retryAfterMs ?? 0,
          Math.round(exp / 2 + (this.opts.random() * exp) / 2),
        );
        await this.sleep(wait);
      } else this.attempts = 0;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.interrupt = undefined;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.interrupt = done;
    });
  }

  private async deliver(b: QueuedBody): Promise<Outcome> {
    let raw: Uint8Array;
    try {
      raw = readFileSync(b.file);
    } catch {
      // Dropped by the cap meanwhile.
      if (this.queue[0] === b) this.queue.shift();
      return { kind: "done" };
    }
    const rows = b.last - b.first + 1;
    const gzipped = b.file.endsWith(".gz");
    let decoded: string[] | undefined;
    const batch: OutgoingBatch = {
      key: `${b.generation}:${b.first}-${b.last}`,
      generation: b.generation,
      first: b.first,
      last: b.last,
      raw,
      gzipped,
      lines: () => {
        decoded ??= Buffer.from(gzipped ? Bun.gunzipSync(raw as Uint8Array<ArrayBuffer>) : raw)
          .toString("utf8")
          .split("\n")
          .filter((l) => l.length > 0);
        return decoded;
      },
    };
    this.counters.requests++;
    let outcome: Outcome;
    try {
      outcome = await this.destination.deliver(batch, this.closing.signal);
    } catch (e) {
      // A destination bug or an unexpected driver error: retry, never lose the batch.
      outcome = { kind: "retry", error: `${(e as Error).name}: ${(e as Error).message}` };
    }
    if (outcome.kind === "done") {
      this.cursor.delivered[b.generation] = Math.max(this.cursor.delivered[b.generation] ?? 0, b.last);
      const gens = Object.keys(this.cursor.delivered);
      if (gens.length > MAX_GENERATIONS)
        for (const g of gens.slice(0, gens.length - MAX_GENERATIONS)) delete this.cursor.delivered[g];
      this.cursor.totals!.sent += rows;
      // The store caught up with everything queued: the drop episode, if any, is over.
      if (this.queue.length === 1 && this.queue[0] === b) delete this.cursor.dropEpisode;
      // Cursor first: a crash before the delete leaves a body the constructor recognises as delivered.
      this.saveCursor();
      rmSync(b.file, { force: true });
      if (this.queue[0] === b) this.queue.shift();
      this.counters.delivered += rows;
      this.lastDeliveryAt = new Date().toISOString();
      return outcome;
    }
    this.fail(outcome.error);
    if (outcome.kind === "retry") {
      this.counters.retried++;
      return outcome;
    }
    // The store refused this batch itself: keep it aside for inspection, do not block the rest.
    renameSync(b.file, join(this.dir, "rejected", b.file.split("/").pop()!));
    if (this.queue[0] === b) this.queue.shift();
    this.counters.dropped += rows;
    this.cursor.totals!.dropped += rows;
    this.saveCursor();
    log.warn("destination rejected a results batch; moved aside", {
      sink: this.name,
      error: outcome.error,
      rows,
    });
    return outcome;
  }

  private fail(message: string): void {
    this.counters.failures++;
    this.lastError = message;
  }

  /** Resolves when everything queued so far has been delivered (or dropped), or after timeoutMs. */
  flush(timeoutMs = 60_000): Promise<boolean> {
    if (this.queue.length === 0) return Promise.resolve(true);
    this.start();
    return new Promise<boolean>((resolve) => {
      const t = setTimeout(() => {
        this.idleWaiters.delete(done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      this.idleWaiters.add(done);
    });
  }

  /** Skips the current backoff (e.g. the operator knows the store is back). */
  retryNow(): void {
    this.interrupt?.();
  }

  stats(): QueuedSinkStats {
    const queued = this.queue.reduce((n, b) => n + (b.last - b.first + 1), 0);
    return {
      name: this.name,
      kind: this.kind,
      acceptedLines: this.counters.accepted,
      duplicateLines: this.counters.duplicates,
      deliveredLines: this.counters.delivered,
      queuedLines: queued,
      queuedBytes: this.queuedBytes(),
      droppedLines: this.counters.dropped,
      failures: this.counters.failures,
      lastError: this.lastError,
      lastDeliveryAt: this.lastDeliveryAt,
      sent: this.cursor.totals!.sent,
      dropped: this.cursor.totals!.dropped,
      queued,
      retried: this.counters.retried,
      requests: this.counters.requests,
      attempts: this.attempts,
      ...(this.destination.counters ? { destination: { ...this.destination.counters } } : {}),
    };
  }

  /**
   * With `graceMs`, what is queued first gets that long to reach a store that is answering (Fluent
   * Bit's Grace on shutdown), so a clean stop leaves the store holding what the file sink holds. A
   * store in backoff gets no grace: the queue is on disk and goes at the next start either way, and a
   * stop must not wait on a store that is down.
   */
  async close(graceMs = 0): Promise<void> {
    if (graceMs > 0 && this.attempts === 0 && !this.closed) await this.flush(graceMs);
    this.closed = true;
    this.closing.abort();
    this.wake?.();
    this.interrupt?.();
    await this.chain;
    await this.sender;
    await this.destination.close?.();
  }
}
