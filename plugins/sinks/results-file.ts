/**
 * Results as a rotating JSON-lines file, like osqueryd's filesystem logger
 * (osqueryd.results.log): `results.log`, rotated to `results.log.1` … `.N`
 * when it would grow past maxBytes. Each batch is appended and fsynced,
 * then a small cursor (`results.log.cursor`) records the highest seq per
 * generation and the file size it produced. On start a file longer than
 * the cursor says (a crash between the two) is cut back, so a batch that
 * is offered again lands exactly once.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { atomicWriteJson, fsyncDir } from "../../core/fsutil.ts";
import { log } from "../../core/log.ts";
import type { ResultBatch, ResultsSink, SinkStats } from "./results.ts";
import { unseen } from "./results.ts";

export interface FileSinkOptions {
  path: string;
  maxBytes?: number;
  /** Rotated files kept besides the live one. */
  maxFiles?: number;
  mode?: number;
}

interface Cursor {
  /** generation → highest seq written. */
  seen: Record<string, number>;
  /** Size of the live file after the last complete write. */
  size: number;
}

/** Generations remembered; older ones can no longer be offered (their outbox is gone). */
const MAX_GENERATIONS = 16;

export class RotatingFileSink implements ResultsSink {
  readonly name: string;
  private readonly path: string;
  private readonly cursorPath: string;
  private readonly maxBytes: number;
  private readonly maxFiles: number;
  private readonly mode: number;
  private cursor: Cursor;
  private chain: Promise<void> = Promise.resolve();
  private readonly counters = { accepted: 0, duplicates: 0, failures: 0 };
  private lastError: string | null = null;
  private lastWriteAt: string | null = null;

  constructor(opts: FileSinkOptions) {
    this.path = opts.path;
    this.name = `file:${opts.path}`;
    this.cursorPath = `${opts.path}.cursor`;
    this.maxBytes = opts.maxBytes ?? 25 * 1024 * 1024;
    this.maxFiles = opts.maxFiles ?? 5;
    this.mode = opts.mode ?? 0o640;
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o750 });
    this.cursor = { seen: {}, size: existsSync(this.path) ? statSync(this.path).size : 0 };
    try {
      if (existsSync(this.cursorPath))
        this.cursor = JSON.parse(readFileSync(this.cursorPath, "utf8")) as Cursor;
    } catch (e) {
      // Without the cursor, lines still in the outbox may be appended a second time; never lost.
      log.warn("results file cursor unreadable; starting without it", {
        file: this.cursorPath,
        reason: (e as Error).message,
      });
    }
    this.repair();
  }

  /** Cuts lines written after the cursor was last saved; they will be offered again. */
  private repair(): void {
    if (!existsSync(this.path)) return;
    const size = statSync(this.path).size;
    if (size <= this.cursor.size) {
      this.cursor.size = size;
      return;
    }
    const fd = openSync(this.path, "r+");
    try {
      ftruncateSync(fd, this.cursor.size);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  write(batch: ResultBatch): Promise<void> {
    const run = this.chain.then(() => this.writeNow(batch));
    this.chain = run.catch(() => {});
    return run;
  }

  private writeNow(batch: ResultBatch): void {
    const last = this.cursor.seen[batch.generation] ?? 0;
    const fresh = unseen(batch, last);
    this.counters.duplicates += batch.lines.length - fresh.lines.length;
    if (fresh.lines.length === 0) return;
    try {
      const data = Buffer.from(`${fresh.lines.join("\n")}\n`);
      if (this.cursor.size > 0 && this.cursor.size + data.length > this.maxBytes) this.rotate();
      const fd = openSync(this.path, "a", this.mode);
      try {
        let off = 0;
        while (off < data.length) off += writeSync(fd, data, off, data.length - off);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      this.cursor.size += data.length;
      this.cursor.seen[batch.generation] = fresh.first + fresh.lines.length - 1;
      const gens = Object.keys(this.cursor.seen);
      if (gens.length > MAX_GENERATIONS)
        for (const g of gens.slice(0, gens.length - MAX_GENERATIONS)) delete this.cursor.seen[g];
      atomicWriteJson(this.cursorPath, this.cursor, 0o600);
      this.counters.accepted += fresh.lines.length;
      this.lastWriteAt = new Date().toISOString();
    } catch (e) {
      this.counters.failures++;
      this.lastError = (e as Error).message;
      throw e;
    }
  }

  /** results.log → .1 → .2 …; the oldest beyond maxFiles is deleted. */
  private rotate(): void {
    rmSync(`${this.path}.${this.maxFiles}`, { force: true });
    for (let i = this.maxFiles - 1; i >= 1; i--) {
      if (existsSync(`${this.path}.${i}`)) renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
    }
    if (existsSync(this.path)) renameSync(this.path, `${this.path}.1`);
    fsyncDir(dirname(this.path));
    this.cursor.size = 0;
    atomicWriteJson(this.cursorPath, this.cursor, 0o600);
  }

  stats(): SinkStats {
    return {
      name: this.name,
      kind: "file",
      acceptedLines: this.counters.accepted,
      duplicateLines: this.counters.duplicates,
      deliveredLines: this.counters.accepted,
      queuedLines: 0,
      queuedBytes: 0,
      droppedLines: 0,
      failures: this.counters.failures,
      lastError: this.lastError,
      lastDeliveryAt: this.lastWriteAt,
      sent: this.counters.accepted,
      dropped: 0,
      queued: 0,
      retried: 0,
    };
  }

  async close(): Promise<void> {
    await this.chain;
  }
}
