/**
 * The contract between the shared queue (QueuedSink) and a store: a
 * destination delivers one batch at a time and stores it once however
 * often the same batch (same key) is offered. Each sink kind implements it
 * in one file (postgres.ts, clickhouse.ts, syslog.ts, results-http.ts).
 */

/** One queued batch as a destination sees it. */
export interface OutgoingBatch {
  /** `<generation>:<first>-<last>`: the same on every retry of this batch. */
  key: string;
  generation: string;
  first: number;
  last: number;
  /** The queue file's bytes (gzip'd when `gzipped`): destinations that ship NDJSON send them as they are. */
  raw: Uint8Array;
  gzipped: boolean;
  /** The JSON lines, decoded on first use. */
  lines(): string[];
}

export type Outcome =
  | { kind: "done" }
  | { kind: "retry"; error: string; retryAfterMs?: number }
  | { kind: "rejected"; error: string };

/** Where a queued sink delivers: one batch at a time, idempotent on `batch.key`. */
export interface Destination {
  /** Stable sink name for stats and metrics, e.g. "postgres:outpost_results". */
  readonly name: string;
  /** Sink kind ("http", "postgres", …). */
  readonly kind: string;
  deliver(batch: OutgoingBatch, signal: AbortSignal): Promise<Outcome>;
  /** Destination-specific counters (replaced characters, truncated rows…), merged into stats. */
  readonly counters?: Readonly<Record<string, number>>;
  close?(): Promise<void>;
}
