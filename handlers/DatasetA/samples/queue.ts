/**
 * The agent's sample queue and uploader. A sample is sealed (envelope.ts)
 * and written durably to `STATE/samples/queue/<key>.sample` before anything
 * is sent, so a crash or restart loses nothing; the uploader POSTs each
 * queued envelope with its idempotency key, retrying with exponential
 * backoff (honouring Retry-After), and on the vendor's 2xx records
 * `sent/<key>.json` *before* removing the queued file.
 *
 * Never sent twice: a key with a sent record is never queued again, and a
 * key is queued at most once. The one window left — the vendor stored the
 * sample but the agent died before recording it — ends in a resend with the
 * same key, which the receiver answers "duplicate" without storing again.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { basename, join } from "node:path";
import { byCodeUnit } from "../../../core/compare.ts";
import { atomicWriteFile, atomicWriteJson, removeStaleTempFiles } from "../../../core/fsutil.ts";
import { log } from "../../../core/log.ts";
import { VERSION } from "../../../core/version.ts";
import {
  idempotencyKey,
  MAX_SAMPLE_BYTES,
  type SampleMeta,
  sealSample,
  type VendorPublicKey,
} from "./envelope.ts";

const logger = log.child({ component: "samples" });

export interface SampleRequest {
  data: Uint8Array;
  path: string;
  sha256: string;
  fileKind: string;
  detection: { name: string; kind: string; source?: string };
  sxl?: { verdict: string; sample: boolean };
}

export type EnqueueResult =
  | { status: "queued"; key: string }
  | { status: "already-sent" | "already-queued"; key: string }
  | { status: "refused"; key: string; reason: string };

export interface SentRecord {
  key: string;
  sha256: string;
  detection: string;
  sentAt: string;
  httpStatus: number;
  /** The receiver's answer: stored now, or a duplicate of an earlier submission. */
  receiver: string;
}

interface QueuedInfo {
  key: string;
  sha256: string;
  detection: string;
  size: number;
  queuedAt: string;
}

export interface QueueOptions {
  dir: string;
  vendorKey: VendorPublicKey;
  /** Total bytes the queue may hold; new samples are refused beyond it. */
  maxQueueBytes?: number;
  now?: () => Date;
}

export class SampleQueue {
  readonly queueDir: string;
  readonly sentDir: string;
  readonly failedDir: string;
  private readonly maxQueueBytes: number;
  private readonly now: () => Date;

  constructor(private readonly o: QueueOptions) {
    this.queueDir = join(o.dir, "queue");
    this.sentDir = join(o.dir, "sent");
    this.failedDir = join(o.dir, "failed");
    this.maxQueueBytes = o.maxQueueBytes ?? 200 * 1024 * 1024;
    this.now = o.now ?? (() => new Date());
    for (const d of [this.queueDir, this.sentDir, this.failedDir])
      mkdirSync(d, { recursive: true, mode: 0o700 });
    this.recover();
  }

  /** After a crash: drop temp files and info files whose envelope never landed; finish interrupted sends. */
  private recover(): void {
    removeStaleTempFiles(this.queueDir);
    removeStaleTempFiles(this.sentDir);
    for (const name of readdirSync(this.queueDir)) {
      const key = name.replace(/\.(sample|json)$/, "");
      if (name.endsWith(".json") && !existsSync(join(this.queueDir, `${key}.sample`)))
        rmSync(join(this.queueDir, name), { force: true });
      // Sent record written, queued file not yet removed: the send is done.
      if (name.endsWith(".sample") && existsSync(join(this.sentDir, `${key}.json`))) this.dequeue(key);
    }
  }

  async enqueue(req: SampleRequest): Promise<EnqueueResult> {
    const key = idempotencyKey(req.sha256, req.detection.name);
    if (existsSync(join(this.sentDir, `${key}.json`))) return { status: "already-sent", key };
    if (existsSync(join(this.queueDir, `${key}.sample`))) return { status: "already-queued", key };
    if (req.data.length > MAX_SAMPLE_BYTES)
      return { status: "refused", key, reason: `larger than ${MAX_SAMPLE_BYTES} bytes` };
    if (this.queuedBytes() + req.data.length > this.maxQueueBytes) {
      return { status: "refused", key, reason: "sample queue is full" };
    }
    const meta: SampleMeta = {
      schema: 1,
      idempotencyKey: key,
      sha256: req.sha256.toLowerCase(),
      size: req.data.length,
      fileName: basename(req.path),
      fileKind: req.fileKind,
      detection: req.detection,
      ...(req.sxl ? { sxl: req.sxl } : {}),
      agent: { version: VERSION, host: hostname() },
      createdAt: this.now().toISOString(),
    };
    const envelope = await sealSample(meta, req.data, this.o.vendorKey);
    const info: QueuedInfo = {
      key,
      sha256: meta.sha256,
      detection: req.detection.name,
      size: envelope.length,
      queuedAt: meta.createdAt,
    };
    // Info first, envelope last: the envelope's presence is what makes a sample queued.
    atomicWriteJson(join(this.queueDir, `${key}.json`), info, 0o600);
    atomicWriteFile(join(this.queueDir, `${key}.sample`), envelope, 0o600);
    logger.info("sample queued", {
      key,
      sha256: meta.sha256,
      detection: req.detection.name,
      bytes: envelope.length,
    });
    return { status: "queued", key };
  }

  /** Queued keys, oldest first. */
  pending(): QueuedInfo[] {
    const out: QueuedInfo[] = [];
    for (const name of readdirSync(this.queueDir)) {
      if (!name.endsWith(".sample")) continue;
      const key = name.slice(0, -".sample".length);
      let info: QueuedInfo;
      try {
        info = JSON.parse(readFileSync(join(this.queueDir, `${key}.json`), "utf8"));
      } catch {
        info = {
          key,
          sha256: "",
          detection: "",
          size: statSync(join(this.queueDir, name)).size,
          queuedAt: "",
        };
      }
      out.push(info);
    }
    return out.sort((a, b) => byCodeUnit(a.queuedAt, b.queuedAt));
  }

  envelope(key: string): Uint8Array {
    return new Uint8Array(readFileSync(join(this.queueDir, `${key}.sample`)));
  }

  markSent(rec: SentRecord): void {
    atomicWriteJson(join(this.sentDir, `${rec.key}.json`), rec, 0o600);
    this.dequeue(rec.key);
  }

  markFailed(key: string, reason: string): void {
    const info = this.pending().find((p) => p.key === key);
    atomicWriteJson(
      join(this.failedDir, `${key}.json`),
      { ...info, key, reason, failedAt: this.now().toISOString() },
      0o600,
    );
    // Keep the envelope beside the record so an operator can resubmit it by hand.
    renameSync(join(this.queueDir, `${key}.sample`), join(this.failedDir, `${key}.sample`));
    rmSync(join(this.queueDir, `${key}.json`), { force: true });
  }

  sent(): SentRecord[] {
    return readdirSync(this.sentDir)
      .filter((n) => n.endsWith(".json"))
      .map((n) => JSON.parse(readFileSync(join(this.sentDir, n), "utf8")) as SentRecord);
  }

  private dequeue(key: string): void {
    rmSync(join(this.queueDir, `${key}.sample`), { force: true });
    rmSync(join(this.queueDir, `${key}.json`), { force: true });
  }

  private queuedBytes(): number {
    let n = 0;
    for (const name of readdirSync(this.queueDir)) {
      if (name.endsWith(".sample")) n += statSync(join(this.queueDir, name)).size;
    }
    return n;
  }
}

export interface UploaderOptions {
  url: string;
  timeoutMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  now?: () => number;
  random?: () => number;
  /** For tests: replaces setTimeout for the retry schedule. */
  setTimer?: (fn: () => void, ms: number) => { cancel(): void };
  fetch?: typeof fetch;
}

export interface UploadStats {
  attempts: number;
  sent: number;
  duplicates: number;
  retries: number;
  failed: number;
}

/**
 * Sends queued samples. `drain()` makes one pass (what tests and the
 * offline CLI call); `start()` keeps passing, waking on `kick()` (a new
 * sample) or when the earliest backoff expires.
 */
export class SampleUploader {
  private readonly backoff = new Map<string, { attempts: number; notBefore: number }>();
  private timer?: { cancel(): void };
  private running = false;
  private draining?: Promise<void>;
  readonly stats: UploadStats = { attempts: 0, sent: 0, duplicates: 0, retries: 0, failed: 0 };
  private readonly now: () => number;
  private readonly setTimer: NonNullable<UploaderOptions["setTimer"]>;

  constructor(
    private readonly queue: SampleQueue,
    private readonly o: UploaderOptions,
  ) {
    this.now = o.now ?? Date.now;
    this.setTimer =
      o.setTimer ??
      ((fn, ms) => {
        const t = setTimeout(fn, ms);
        t.unref?.();
        return { cancel: () => clearTimeout(t) };
      });
  }

  start(): void {
    this.running = true;
    this.kick();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.timer?.cancel();
    await this.draining;
  }

  /** Something new was queued: send now rather than at the next scheduled pass. */
  kick(): void {
    if (!this.running) return;
    this.timer?.cancel();
    this.timer = this.setTimer(() => void this.pass(), 0);
  }

  private async pass(): Promise<void> {
    await this.drain();
    if (!this.running) return;
    const waits = [...this.backoff.values()].map((b) => b.notBefore - this.now());
    if (waits.length) this.timer = this.setTimer(() => void this.pass(), Math.max(0, Math.min(...waits)));
  }

  /** One pass over the queue: every sample whose backoff has expired gets one attempt. */
  drain(): Promise<void> {
    this.draining ??= this.drainOnce().finally(() => {
      this.draining = undefined;
    });
    return this.draining;
  }

  private async drainOnce(): Promise<void> {
    for (const item of this.queue.pending()) {
      const b = this.backoff.get(item.key);
      if (b && b.notBefore > this.now()) continue;
      await this.send(item.key, item.sha256, item.detection);
    }
  }

  private async send(key: string, sha256: string, detection: string): Promise<void> {
    this.stats.attempts++;
    let status = 0;
    let retryAfter: number | undefined;
    let body = "";
    try {
      const res = await (this.o.fetch ?? fetch)(this.o.url, {
        method: "POST",
        headers: { "content-type": "application/vnd.outpost.sample", "idempotency-key": key },
        body: this.queue.envelope(key) as Uint8Array<ArrayBuffer>,
        signal: AbortSignal.timeout(this.o.timeoutMs ?? 30_000),
        redirect: "error",
      });
      status = res.status;
      body = await res.text();
      const ra = res.headers.get("retry-after");
      if (ra && /^\d+$/.test(ra)) retryAfter = Number(ra) * 1000;
    } catch (e) {
      logger.warn("sample upload failed", { key, error: (e as Error).message });
    }
    if (status >= 200 && status < 300) {
      let receiver = "stored";
      try {
        receiver = (JSON.parse(body) as { status?: string }).status ?? receiver;
      } catch {
        // A 2xx is what counts; the body is informational.
      }
      this.queue.markSent({
        key,
        sha256,
        detection,
        sentAt: new Date(this.now()).toISOString(),
        httpStatus: status,
        receiver,
      });
      this.backoff.delete(key);
      if (receiver === "duplicate") this.stats.duplicates++;
      else this.stats.sent++;
      logger.info("sample uploaded", { key, status, receiver });
      return;
    }
    // 4xx other than timeout/too-many-requests: the receiver will never take it; stop retrying.
    if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
      this.queue.markFailed(key, `HTTP ${status}: ${body.slice(0, 200)}`);
      this.backoff.delete(key);
      this.stats.failed++;
      logger.warn("sample rejected by the receiver", { key, status });
      return;
    }
    const prev = this.backoff.get(key)?.attempts ?? 0;
    const base = this.o.baseDelayMs ?? 2000;
    const max = this.o.maxDelayMs ?? 3600_000;
    const jitter = 0.8 + 0.4 * (this.o.random ?? Math.random)();
    const delay = Math.max(retryAfter ?? 0, Math.min(max, base * 2 ** prev) * jitter);
    this.backoff.set(key, { attempts: prev + 1, notBefore: this.now() + delay });
    this.stats.retries++;
  }
}
