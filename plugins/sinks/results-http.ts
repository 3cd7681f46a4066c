/**
 * Results to a data lake over HTTP, without loss and without duplicates.
 *
 * The queue, backoff, cursor and cap are the shared QueuedSink
 * (queued-sink.ts); this file only says how one batch is delivered: a POST
 * of the queued body (gzip'd JSON lines) with an `Idempotency-Key` of
 * `<generation>:<first>-<last>`, which the receiver uses to store it once
 * (`contentctl lake serve` does). 2xx → done; 408, 429, 5xx, timeouts and
 * resets → retry (Retry-After honoured); 401/403 → retry (a credential the
 * operator will fix, not a bad batch); any other 4xx → rejected (moved to
 * `rejected/` for inspection instead of blocking the queue forever).
 */
import {
  type Destination,
  type DropInfo,
  type Outcome,
  type OutgoingBatch,
  QueuedSink,
} from "./queued-sink.ts";

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
  onDrop?: (info: DropInfo) => void;
}

export interface HttpTarget {
  url: string;
  method: "POST" | "PUT";
  headers: Record<string, string>;
}

export class HttpDestination implements Destination {
  readonly name: string;
  readonly kind = "http";
  private readonly doFetch: typeof fetch;
  /** Where queued bodies go; `retarget` moves what is still queued to a new endpoint. */
  private target: HttpTarget;

  constructor(
    private readonly opts: {
      url: string;
      token?: string;
      timeoutMs: number;
      fetchImpl?: typeof fetch;
      method?: "POST" | "PUT";
      headers?: Record<string, string>;
      contentType?: string;
    },
  ) {
    this.name = `http:${opts.url}`;
    this.doFetch = opts.fetchImpl ?? fetch;
    this.target = { url: opts.url, method: opts.method ?? "POST", headers: { ...(opts.headers ?? {}) } };
  }

  retarget(target: HttpTarget): void {
    this.target = { ...target, headers: { ...target.headers } };
  }

  async deliver(b: OutgoingBatch, signal: AbortSignal): Promise<Outcome> {
    let res: Response;
    try {
      res = await this.doFetch(this.target.url, {
        method: this.target.method,
        headers: {
          ...this.target.headers,
          "content-type": this.opts.contentType ?? "application/x-ndjson",
          ...(b.gzipped ? { "content-encoding": "gzip" } : {}),
          "idempotency-key": b.key,
          "x-outpost-rows": String(b.last - b.first + 1),
          ...(this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {}),
        },
        body: b.raw,
        signal: AbortSignal.any([AbortSignal.timeout(this.opts.timeoutMs), signal]),
      });
      await res.body?.cancel().catch(() => {});
    } catch (e) {
      return { kind: "retry", error: `${(e as Error).name}: ${(e as Error).message}` };
    }
    if (res.ok) return { kind: "done" };
    if (res.status === 408 || res.status === 429 || res.status >= 500) {
      const ra = Number(res.headers.get("retry-after"));
      return {
        kind: "retry",
        error: `HTTP ${res.status}`,
        ...(Number.isFinite(ra) && ra > 0 ? { retryAfterMs: Math.min(ra, 3600) * 1000 } : {}),
      };
    }
    if (res.status === 401 || res.status === 403)
      return { kind: "retry", error: `HTTP ${res.status}: batch rejected` };
    return { kind: "rejected", error: `HTTP ${res.status}: batch rejected` };
  }
}

export class HttpLakeSink extends QueuedSink {
  private readonly http: HttpDestination;

  constructor(opts: HttpSinkOptions) {
    const http = new HttpDestination({
      url: opts.url,
      ...(opts.token ? { token: opts.token } : {}),
      timeoutMs: opts.timeoutMs ?? 30_000,
      ...(opts.fetchImpl ? { fetchImpl: opts.fetchImpl } : {}),
      ...(opts.method ? { method: opts.method } : {}),
      ...(opts.headers ? { headers: opts.headers } : {}),
      ...(opts.contentType ? { contentType: opts.contentType } : {}),
    });
    super(http, {
      dir: opts.dir,
      ...(opts.gzip !== undefined ? { gzip: opts.gzip } : {}),
      ...(opts.queueMaxBytes !== undefined ? { queueMaxBytes: opts.queueMaxBytes } : {}),
      ...(opts.minBackoffMs !== undefined ? { minBackoffMs: opts.minBackoffMs } : {}),
      ...(opts.maxBackoffMs !== undefined ? { maxBackoffMs: opts.maxBackoffMs } : {}),
      ...(opts.random ? { random: opts.random } : {}),
      ...(opts.onDrop ? { onDrop: opts.onDrop } : {}),
    });
    this.http = http;
  }

  /** Sends what is queued, and what comes, to a new endpoint (e.g. new TELEMSUP content). */
  retarget(target: HttpTarget): void {
    this.http.retarget(target);
    this.retryNow();
  }
}
