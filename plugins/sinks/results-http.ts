/**
 * Results to a data lake over HTTP, without loss and without duplicates.
 *
 * `write` turns a batch into one request body (gzip'd JSON lines) and
 * stores it in an on-disk queue before it resolves — the caller may then
 * acknowledge the lines upstream. A sender delivers queued bodies in order,
 * one at a time, each with an `Idempotency-Key` of
 * `<generation>:<first>-<last>`: a body is only deleted after a 2xx, and a
 * retry after an ambiguous failure (timeout, reset) carries the same key,
 * which the receiver uses to store it once (`contentctl lake serve` does).
 * Failures back off exponentially with jitter (Retry-After honoured), so an
 * outage costs nothing but queue space; the queue is capped, dropping the
 * oldest bodies (counted) rather than filling the disk. A body the receiver
 * rejects as malformed (4xx) is moved to `rejected/` for inspection instead
 * of blocking the queue forever.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { atomicWriteFile, atomicWriteJson } from "../../core/fsutil.ts";
import { log } from "../../core/log.ts";
import type { ResultBatch, ResultsSink, SinkStats } from "./results.ts";
import { unseen } from "./results.ts";

export interface HttpSinkOptions {
  url: string;
  /** Queue directory (survives restarts). */
  dir: string;
  token?: string;
  gzip?: boolean;
  timeoutMs?: number;
  queueMaxBytes?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  fetchImpl?: typeof fetch;
  random?: () => number;
  /** Request method (default POST); telemetry may PUT, as its TELEMSUP document says. */
  method?: "POST" | "PUT";
  /** Extra request headers (validated by the caller; the sink's own headers win). */
  headers?: Record<string, string>;
  contentType?: string;
}

interface QueuedBody {
  file: string;
  order: number;
  generation: string;
  first: number;
  last: number;
  bytes: number;
}

interface Cursor {
  /** generation → highest seq confirmed by the receiver. */
  delivered: Record<string, number>;
}

const BODY = /^(\d{12})_([A-Za-z0-9-]{1,64})_(\d{16})_(\d{16})\.ndjson(\.gz)?$/;
const MAX_GENERATIONS = 16;

export class HttpLakeSink implements ResultsSink {
  readonly name: string;
  private readonly dir: string;
  private readonly opts: Required<Omit<HttpSinkOptions, "token" | "fetchImpl">> &
    Pick<HttpSinkOptions, "token">;
  /** Where queued bodies go; `retarget` moves what is still queued to a new endpoint. */
  private target: { url: string; method: "POST" | "PUT"; headers: Record<string, string> };
  private readonly doFetch: typeof fetch;
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
    requests: 0,
  };
  private lastError: string | null = null;
  private lastDeliveryAt: string | null = null;
  /** Consecutive failed attempts of the body at the head of the queue. */
  private attempts = 0;
  /** Aborts an in-flight request on close. */
  private readonly closing = new AbortController();

  constructor(opts: HttpSinkOptions) {
    this.name = `http:${opts.url}`;
    this.dir = opts.dir;
    this.opts = {
      url: opts.url,
      dir: opts.dir,
      token: opts.token,
      gzip: opts.gzip ?? true,
      timeoutMs: opts.timeoutMs ?? 30_000,
      queueMaxBytes: opts.queueMaxBytes ?? 256 * 1024 * 1024,
      minBackoffMs: opts.minBackoffMs ?? 1000,
      maxBackoffMs: opts.maxBackoffMs ?? 300_000,
      random: opts.random ?? Math.random,
      method: opts.method ?? "POST",
      headers: opts.headers ?? {},
      contentType: opts.contentType ?? "application/x-ndjson",
    };
    this.target = { url: opts.url, method: this.opts.method, headers: this.opts.headers };
    this.doFetch = opts.fetchImpl ?? fetch;
    mkdirSync(join(this.dir, "rejected"), { recursive: true, mode: 0o700 });
    const cursorPath = join(this.dir, "cursor.json");
    this.cursor = { delivered: {} };
    try {
      if (existsSync(cursorPath)) this.cursor = JSON.parse(readFileSync(cursorPath, "utf8")) as Cursor;
    } catch (e) {
      // Without the cursor a delivered body may be sent again; the receiver's idempotency keys absorb it.
      log.warn("results queue cursor unreadable; starting without it", {
        file: cursorPath,
        reason: (e as Error).message,
      });
    }
    for (const name of readdirSync(this.dir).sort()) {
      const m = BODY.exec(name);
      if (!m) {
        // Temp files of an interrupted atomic write.
        if (name.endsWith(".tmp")) rmSync(join(this.dir, name), { force: true });
        continue;
      }
      const body: QueuedBody = {
        file: join(this.dir, name),
        order: Number(m[1]),
        generation: m[2]!,
        first: Number(m[3]),
        last: Number(m[4]),
        bytes: statSync(join(this.dir, name)).size,
      };
      // Delivered before the crash but not yet deleted.
      if (body.last <= (this.cursor.delivered[body.generation] ?? 0)) rmSync(body.file, { force: true });
      else this.queue.push(body);
    }
    this.order = this.queue.at(-1)?.order ?? 0;
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
    const data = this.opts.gzip ? gzipSync(text) : text;
    this.order++;
    const name = `${String(this.order).padStart(12, "0")}_${batch.generation}_${String(fresh.first).padStart(16, "0")}_${String(last).padStart(16, "0")}.ndjson${this.opts.gzip ? ".gz" : ""}`;
    const file = join(this.dir, name);
    atomicWriteFile(file, data, 0o600);
    this.queue.push({
      file,
      order: this.order,
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
    // The newest body always stays: dropping what was just accepted would be silent loss.
    while (bytes > this.opts.queueMaxBytes && this.queue.length > 1) {
      const oldest = this.queue.shift()!;
      rmSync(oldest.file, { force: true });
      bytes -= oldest.bytes;
      this.counters.dropped += oldest.last - oldest.first + 1;
      this.attempts = 0;
      log.warn("results queue full: dropped the oldest batch", {
        sink: this.name,
        lines: oldest.last - oldest.first + 1,
        queueMaxBytes: this.opts.queueMaxBytes,
      });
    }
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
        // Full jitter keeps a fleet that lost its lake at the same moment from returning in lock-step.
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

  private async deliver(b: QueuedBody): Promise<{ kind: "done" | "retry"; retryAfterMs?: number }> {
    let data: Uint8Array;
    try {
      data = readFileSync(b.file);
    } catch {
      // Dropped by the cap meanwhile.
      if (this.queue[0] === b) this.queue.shift();
      return { kind: "done" };
    }
    const rows = b.last - b.first + 1;
    this.counters.requests++;
    let res: Response;
    try {
      res = await this.doFetch(this.target.url, {
        method: this.target.method,
        headers: {
          ...this.target.headers,
          "content-type": this.opts.contentType,
          ...(this.opts.gzip ? { "content-encoding": "gzip" } : {}),
          "idempotency-key": `${b.generation}:${b.first}-${b.last}`,
          "x-outpost-rows": String(rows),
          ...(this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {}),
        },
        body: data,
        signal: AbortSignal.any([AbortSignal.timeout(this.opts.timeoutMs), this.closing.signal]),
      });
      await res.body?.cancel().catch(() => {});
    } catch (e) {
      this.fail(`${(e as Error).name}: ${(e as Error).message}`);
      return { kind: "retry" };
    }
    if (res.ok) {
      this.cursor.delivered[b.generation] = Math.max(this.cursor.delivered[b.generation] ?? 0, b.last);
      const gens = Object.keys(this.cursor.delivered);
      if (gens.length > MAX_GENERATIONS)
        for (const g of gens.slice(0, gens.length - MAX_GENERATIONS)) delete this.cursor.delivered[g];
      // Cursor first: a crash before the delete leaves a body the constructor recognises as delivered.
      atomicWriteJson(join(this.dir, "cursor.json"), this.cursor, 0o600);
      rmSync(b.file, { force: true });
      if (this.queue[0] === b) this.queue.shift();
      this.counters.delivered += rows;
      this.lastDeliveryAt = new Date().toISOString();
      return { kind: "done" };
    }
    if (res.status === 408 || res.status === 429 || res.status >= 500) {
      const ra = Number(res.headers.get("retry-after"));
      this.fail(`HTTP ${res.status}`);
      return {
        kind: "retry",
        ...(Number.isFinite(ra) && ra > 0 ? { retryAfterMs: Math.min(ra, 3600) * 1000 } : {}),
      };
    }
    // The receiver refused this body itself (400, 401, 413…): keep it aside, do not block the rest.
    this.fail(`HTTP ${res.status}: batch rejected`);
    if (res.status === 401 || res.status === 403) return { kind: "retry" };
    renameSync(b.file, join(this.dir, "rejected", b.file.split("/").pop()!));
    if (this.queue[0] === b) this.queue.shift();
    this.counters.dropped += rows;
    log.warn("data lake rejected a results batch; moved aside", {
      sink: this.name,
      status: res.status,
      rows,
    });
    return { kind: "done" };
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

  /** Sends what is queued, and what comes, to a new endpoint (e.g. new TELEMSUP content). */
  retarget(target: { url: string; method: "POST" | "PUT"; headers: Record<string, string> }): void {
    this.target = { ...target, headers: { ...target.headers } };
    this.interrupt?.();
  }

  /** Skips the current backoff (e.g. the operator knows the lake is back). */
  retryNow(): void {
    this.interrupt?.();
  }

  stats(): SinkStats & { requests: number; attempts: number } {
    return {
      name: this.name,
      kind: "http",
      acceptedLines: this.counters.accepted,
      duplicateLines: this.counters.duplicates,
      deliveredLines: this.counters.delivered,
      queuedLines: this.queue.reduce((n, b) => n + (b.last - b.first + 1), 0),
      queuedBytes: this.queuedBytes(),
      droppedLines: this.counters.dropped,
      failures: this.counters.failures,
      lastError: this.lastError,
      lastDeliveryAt: this.lastDeliveryAt,
      requests: this.counters.requests,
      attempts: this.attempts,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.closing.abort();
    this.wake?.();
    this.interrupt?.();
    await this.chain;
    await this.sender;
  }
}
