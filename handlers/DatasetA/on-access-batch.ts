/**
 * Groups on-access scans into few calls to the scanner host: one IPC round
 * trip costs the supervisor ~100 µs of CPU, a 16 KiB scan ~30 µs in the
 * host, so per-file calls spend most of their time on the trip
 * (bench/onaccess.ts). Jobs queue as urgent (an open is waiting) or
 * background (read-ahead); a batch takes urgent jobs first and fills up
 * with background ones, up to `maxItems` files and `maxBytes` together.
 * At most `maxInFlight` batches are out at once, and background-only
 * batches go out only when nothing else is, so read-ahead never stands
 * between an open and its scan for more than one batch. An object larger
 * than `maxBytes` goes alone through `scanOne` (which streams it).
 */
import type { ScanReport } from "./scan/service.ts";

export interface BatchItem {
  bytes: Uint8Array;
  name: string;
}

export interface ScanBatcherOptions {
  scanMany: (items: BatchItem[]) => Promise<ScanReport[]>;
  scanOne: (item: BatchItem) => Promise<ScanReport>;
  maxItems?: number;
  maxBytes?: number;
  maxInFlight?: number;
}

export interface ScanJob extends BatchItem {
  urgent: boolean;
  sent: boolean;
  resolve: (r: ScanReport) => void;
  reject: (e: unknown) => void;
}

export class ScanBatcher {
  private readonly urgent: ScanJob[] = [];
  private readonly background: ScanJob[] = [];
  private inFlight = 0;
  private pumpScheduled = false;
  readonly counters = { batches: 0, batchedFiles: 0 };

  constructor(private readonly o: ScanBatcherOptions) {}

  private get maxBytes(): number {
    return this.o.maxBytes ?? 1024 * 1024;
  }

  /** Queues `item`; the promise settles with its report (or the batch's error). */
  submit(item: BatchItem, urgent: boolean): { job: ScanJob; report: Promise<ScanReport> } {
    let job!: ScanJob;
    const report = new Promise<ScanReport>((resolve, reject) => {
      job = { ...item, urgent, sent: false, resolve, reject };
    });
    if (item.bytes.length > this.maxBytes) {
      job.sent = true;
      this.o.scanOne(item).then(job.resolve, job.reject);
      return { job, report };
    }
    if (urgent) {
      this.urgent.push(job);
      this.pump();
    } else {
      // Read-ahead queues its files in one synchronous burst: send them as full batches, not one alone.
      this.background.push(job);
      if (!this.pumpScheduled) {
        this.pumpScheduled = true;
        queueMicrotask(() => {
          this.pumpScheduled = false;
          this.pump();
        });
      }
    }
    return { job, report };
  }

  /** An open now waits for a background job: it goes out with the next batch. */
  promote(job: ScanJob): void {
    if (job.sent || job.urgent) return;
    const i = this.background.indexOf(job);
    if (i >= 0) this.background.splice(i, 1);
    job.urgent = true;
    this.urgent.push(job);
    this.pump();
  }

  get queued(): number {
    return this.urgent.length + this.background.length;
  }

  private pump(): void {
    const max = this.o.maxInFlight ?? 2;
    while (this.inFlight < max) {
      if (this.urgent.length === 0 && (this.background.length === 0 || this.inFlight > 0)) return;
      const batch = this.take();
      if (batch.length === 0) return;
      void this.send(batch);
    }
  }

  private take(): ScanJob[] {
    const maxItems = this.o.maxItems ?? 16;
    const batch: ScanJob[] = [];
    let bytes = 0;
    for (const q of [this.urgent, this.background]) {
      while (q.length > 0 && batch.length < maxItems && bytes + q[0]!.bytes.length <= this.maxBytes) {
        const job = q.shift()!;
        job.sent = true;
        bytes += job.bytes.length;
        batch.push(job);
      }
    }
    return batch;
  }

  private async send(batch: ScanJob[]): Promise<void> {
    this.inFlight++;
    this.counters.batches++;
    this.counters.batchedFiles += batch.length;
    try {
      const reports = await this.o.scanMany(batch.map((j) => ({ bytes: j.bytes, name: j.name })));
      for (const [i, j] of batch.entries()) j.resolve(reports[i]!);
    } catch (e) {
      for (const j of batch) j.reject(e);
    } finally {
      this.inFlight--;
      this.pump();
    }
  }
}
