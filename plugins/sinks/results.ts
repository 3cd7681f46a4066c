/**
 * Where scheduled-query results go. The query host numbers every result
 * line (generation, seq); a sink accepts batches of consecutive lines,
 * keeps them durably, and remembers the highest seq it holds per
 * generation, so a batch offered twice (the supervisor crashed before it
 * acknowledged) is stored once. That is the whole exactly-once contract:
 * ack only after `write` resolved, and skip what you already have.
 */
export interface ResultBatch {
  /** Outbox generation: sequence numbers are unique within it. */
  generation: string;
  /** Sequence number of lines[0]. */
  first: number;
  /** osquery result log lines (JSON, one per line, no newline inside). */
  lines: readonly string[];
}

export interface SinkStats {
  name: string;
  kind: string;
  /** Lines stored (file) or queued for delivery (http) by this process. */
  acceptedLines: number;
  /** Lines offered again and skipped. */
  duplicateLines: number;
  /** Lines the destination confirmed. */
  deliveredLines: number;
  /** Lines waiting for delivery. */
  queuedLines: number;
  queuedBytes: number;
  /** Lines given up: queue cap exceeded or rejected by the destination. */
  droppedLines: number;
  failures: number;
  lastError: string | null;
  lastDeliveryAt: string | null;
  /** Contract (docs/sinks.md): lines the destination confirmed, lifetime where the sink keeps a queue. */
  sent: number;
  /** Contract: lines given up (queue cap reached, or refused by the store); 0 unless that happened. */
  dropped: number;
  /** Lines waiting for delivery. */
  queued: number;
  /** Delivery attempts that failed and will be repeated. */
  retried: number;
}

export interface ResultsSink {
  readonly name: string;
  /** Resolves once the batch is durable in the sink; only then may the caller acknowledge it. */
  write(batch: ResultBatch): Promise<void>;
  stats(): SinkStats;
  /**
   * Stops the sink. `graceMs`: how long what it still queues may take to reach its store first (a
   * clean stop); sinks that queue nothing ignore it.
   */
  close(graceMs?: number): Promise<void>;
}

/** The part of a batch after `last` (what the sink already holds). */
export function unseen(batch: ResultBatch, last: number): { first: number; lines: readonly string[] } {
  const skip = Math.max(0, Math.min(batch.lines.length, last - batch.first + 1));
  return { first: batch.first + skip, lines: batch.lines.slice(skip) };
}
