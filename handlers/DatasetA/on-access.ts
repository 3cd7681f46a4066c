/**
 * On-access scanning: decides each file the access sensor
 * (core/sensors/access.ts) reports. The bytes are read here, in the
 * supervisor, from the fd fanotify opened for us, and sent to the DatasetA
 * scanner over IPC as `agent scan` does (the scanner still has no
 * filesystem access).
 *
 * - Verdict cache keyed by (dev, inode, mtime, ctime, size): a file is
 *   scanned once until it changes. A file whose key changed while it was
 *   read and scanned is scanned again (up to 3 times) and never cached.
 *   Clean files are also handed to `onClean` (the access sensor's
 *   AllowCache: later opens are answered on its reader thread). New
 *   content (`forgetVerdicts`) empties both; a scan that started before is
 *   not cached.
 * - Exclusions: the agent's state dir, `excludePaths`, and the agent's
 *   exclusions with scope "onAccess" — by path before the file is read; by
 *   SHA-256 or verified signer on the scan's outcome (their detections are
 *   suppressed, counted as `suppressed`; scan/exclusion-check.ts) — and
 *   files whose SHA-256 LocalRepData rates high (asked only when the scan
 *   detects something, so a clean file costs one IPC call).
 * - Live Protection: a lookup over the local rate limit is not skipped but
 *   queued and asked later; the local verdict stands meanwhile (in block
 *   mode the open is refused). Status counts deferred lookups.
 */
import { closeSync, openSync } from "node:fs";
import type { ExclusionMatcher } from "../../core/exclusions/matcher.ts";
import type { Lease } from "../../core/host/shared-transfer.ts";
import { metrics } from "../../core/metrics.ts";
import type { AccessEvent } from "../../core/sensors/access.ts";
import type { FileIdentity } from "../../core/sensors/allow-cache.ts";
import type { OnAccessConfig } from "../../core/sensors-config.ts";
import type { RepAnswer } from "../LocalRepData/index.ts";
import { ScanBatcher, type ScanJob } from "./on-access-batch.ts";
import { type FileKey, fileKey, keyOf, PREFETCH_FLAGS, readAll } from "./on-access-files.ts";
import { ReadAhead } from "./on-access-readahead.ts";
import type { ScanReport, ScanService } from "./scan/service.ts";
import type { SxlClient } from "./sxl/client.ts";

type Call = (type: string, method: string, args: unknown) => Promise<unknown>;

export interface OnAccessOptions {
  config: OnAccessConfig;
  stateDir: string;
  /** The scanning service, or how to find the one in force (it is rebuilt when Live Protection settings change). */
  service: ScanService | (() => ScanService | undefined);
  call: Call;
  sxl?: SxlClient | (() => SxlClient | undefined);
  emit: (type: string, fields: Record<string, unknown>) => void;
  /** The agent's exclusions (core/exclusions): scope "onAccess" is never scanned, "lookups" never asked. */
  exclusions?: () => ExclusionMatcher;
  /** How often the deferred-lookup queue is retried while not empty (ms). */
  retryMs?: number;
  /**
   * A file found clean, as it is now: later opens of it unchanged may be allowed without asking.
   * `fd` is open on that very file (the event's or a read-ahead's) for the duration of the call.
   */
  onClean?: (f: FileIdentity, fd: number) => void;
  /** Every verdict given so far is void (new content): forget what onClean was told. */
  onForget?: () => void;
  /** Block mode scans the files after a waited-for open ahead of the reader (default true). */
  readAhead?: boolean;
}

interface Deferred {
  sha256: string;
  name: string;
  path: string;
}

const CACHE_MAX = 100_000;
/** Scans go out in batches up to this many bytes together; a larger file goes alone. */
const BATCH_BYTES = 1024 * 1024;

const outcomes = metrics.counter(
  "outpost_onaccess_files_total",
  "On-access decisions, by outcome (cache-hit, pending-hit, scanned, read-ahead, detected, blocked, excluded, suppressed, too-large, changed, deferred-lookup)",
);
const DEFERRED_MAX = 10_000;

export class OnAccessScanner {
  private readonly cache = new Map<string, boolean>();
  private readonly deferred: Deferred[] = [];
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** Bumped by forgetVerdicts: a scan that started under older content is not cached. */
  private epoch = 0;
  /** Files being scanned now, by key: an open of the same file waits for that verdict. */
  private readonly pending = new Map<string, { job: ScanJob; verdict: Promise<boolean | undefined> }>();
  private readonly batcher: ScanBatcher;
  private readonly readAhead: ReadAhead;
  private largeQueue: Promise<void> = Promise.resolve();
  private readonly excludes: string[];
  readonly counters = {
    scanned: 0,
    cacheHits: 0,
    cacheMisses: 0,
    detections: 0,
    blocked: 0,
    excluded: 0,
    suppressed: 0,
    highReputation: 0,
    tooLarge: 0,
    changedDuringScan: 0,
    pendingHits: 0,
    readAhead: 0,
    errors: 0,
    deferredLookups: 0,
    deferredResolved: 0,
    deferredDropped: 0,
  };

  constructor(private readonly o: OnAccessOptions) {
    const dirPrefix = (p: string) => (p.endsWith("/") ? p : `${p}/`);
    this.excludes = [o.stateDir, ...o.config.excludePaths].map(dirPrefix);
    this.batcher = new ScanBatcher({
      scanMany: (items) =>
        this.service.scanBytesMany(items, {
          source: "on-access",
          scope: "onAccess",
          executableReputation: false,
        }),
      scanOne: (item) =>
        this.service.scanBytes(item.bytes, item.name, { source: "on-access", scope: "onAccess" }),
      maxBytes: BATCH_BYTES,
    });
    this.readAhead = new ReadAhead({
      wanted: (path, st) => {
        const key = keyOf(st);
        return !this.cache.has(key) && !this.pending.has(key) && !this.excluded(path);
      },
      fetch: (path) => this.prefetch(path),
      queued: () => this.batcher.queued,
    });
  }

  excluded(path: string): boolean {
    return (
      this.excludes.some((e) => path.startsWith(e) || `${path}/` === e) ||
      (this.o.exclusions?.().file("onAccess", path) ?? false)
    );
  }

  /** The access sensor's callback: true allows the open (always true in detect mode). */
  async decide(ev: AccessEvent): Promise<boolean> {
    if (!ev.path || this.excluded(ev.path)) {
      this.count("excluded", "excluded");
      return true;
    }
    const block = this.o.config.mode === "block" && ev.permission;
    for (let attempt = 0; attempt < 3; attempt++) {
      const before = fileKey(ev.fd);
      const hit = this.cache.get(before.key);
      if (hit !== undefined) {
        this.count("cacheHits", "cache-hit");
        if (hit) this.o.onClean?.(before.identity, ev.fd);
        return this.verdict(hit, ev, block);
      }
      const waiting = this.pending.get(before.key);
      if (waiting) {
        // This very file (same key) is being scanned — read ahead, or for another opener: wait for it.
        if (waiting.job) this.batcher.promote(waiting.job);
        const v = await waiting.verdict;
        if (v === undefined) continue; // it changed meanwhile, or the scan failed: scan it ourselves
        this.count("pendingHits", "pending-hit");
        // The reader caught up with the read-ahead: keep it ahead.
        if (block && this.o.readAhead !== false) this.readAhead.onReach(ev.path);
        return this.verdict(v, ev, block);
      }
      this.counters.cacheMisses++;
      if (before.size > this.o.config.maxFileBytes) {
        this.count("tooLarge", "too-large");
        return true;
      }
      // Files over the batch size are read and scanned one at a time: bounded memory at any concurrency.
      const large = before.size > BATCH_BYTES;
      const release = large ? await this.largeTurn() : undefined;
      let v: boolean | undefined;
      // Read straight into the scanner's transfer region when there is room (no copy through its pipe).
      const lease = this.service.lease(before.size);
      let handedOver = false;
      try {
        const bytes = readAll(ev.fd, before.size, lease?.bytes);
        if (block && this.o.readAhead !== false) this.readAhead.onReach(ev.path);
        const settled = this.scanAndSettle(ev.fd, before, bytes, ev.path, true, lease);
        handedOver = true; // released by scanAndSettle once judged
        v = await settled;
      } finally {
        if (!handedOver) lease?.release();
        release?.();
      }
      if (v === undefined) continue; // changed under us (clean): what we scanned may not be what is read
      return this.verdict(v, ev, block);
    }
    // Still changing after three scans: reported, not cached, allowed (writers are mid-write).
    this.o.emit("on-access-unstable", { path: ev.path, pid: ev.pid });
    return true;
  }

  /**
   * Scans `bytes` (read through `fd`, whose key was `before`) and caches the verdict if the file is
   * still the same afterwards. Resolves to the verdict; undefined when the file changed and nothing
   * was found (look again); false when it changed but a detection was found (it stands, uncached).
   * Rejects when the scan failed. Registered as pending meanwhile, so other opens of it wait.
   */
  private scanAndSettle(
    fd: number,
    before: FileKey,
    bytes: Uint8Array,
    path: string,
    urgent: boolean,
    lease?: Lease,
  ): Promise<boolean | undefined> {
    const epoch = this.epoch;
    this.count("scanned", "scanned");
    const { job, report } = this.batcher.submit({ bytes, name: path }, urgent);
    const verdict = (async () => {
      try {
        const clean = await this.judge(await report, bytes, path);
        if (fileKey(fd).key !== before.key) {
          this.count("changedDuringScan", "changed");
          return clean ? undefined : false;
        }
        if (epoch === this.epoch) {
          if (this.cache.size >= CACHE_MAX) this.cache.clear();
          this.cache.set(before.key, clean);
          if (clean) this.o.onClean?.(before.identity, fd);
        }
        return clean;
      } finally {
        this.pending.delete(before.key);
        // `bytes` (a view of the lease) is not looked at again: judged, hashed if detected, reported.
        lease?.release();
      }
    })();
    // Waiters fall back to their own scan if this one fails; the caller sees the error.
    this.pending.set(before.key, { job, verdict: verdict.catch(() => undefined) });
    return verdict;
  }

  /** Waits until no other large file is being read or scanned; call the result when done. */
  private async largeTurn(): Promise<() => void> {
    const previous = this.largeQueue;
    let done!: () => void;
    this.largeQueue = new Promise<void>((r) => {
      done = r;
    });
    await previous;
    return done;
  }

  /** Read-ahead: opens, reads and queues a background scan of a file nobody has opened yet. */
  private prefetch(path: string): void {
    let fd: number;
    try {
      fd = openSync(path, PREFETCH_FLAGS);
    } catch {
      return;
    }
    let handedOver = false;
    let lease: Lease | undefined;
    try {
      const before = fileKey(fd);
      if (!before.regular || before.size === 0 || before.size > this.o.config.maxFileBytes) return;
      if (this.cache.has(before.key) || this.pending.has(before.key)) return;
      lease = this.service.lease(before.size);
      const bytes = readAll(fd, before.size, lease?.bytes);
      this.count("readAhead", "read-ahead");
      const settled = this.scanAndSettle(fd, before, bytes, path, false, lease);
      handedOver = true;
      void settled
        .catch(() => undefined)
        .finally(() => {
          try {
            closeSync(fd);
          } catch {}
        });
    } catch {
      // Gone, unreadable, or not a file any more: its own open will decide it.
    } finally {
      if (!handedOver) {
        lease?.release();
        try {
          closeSync(fd);
        } catch {}
      }
    }
  }

  private get service(): ScanService {
    const s = typeof this.o.service === "function" ? this.o.service() : this.o.service;
    // Thrown into the decision's error path: the open is allowed (fail-open) and counted.
    if (!s) throw new Error("the scanning service is restarting");
    return s;
  }

  private get sxl(): SxlClient | undefined {
    return typeof this.o.sxl === "function" ? this.o.sxl() : this.o.sxl;
  }

  private count(name: keyof OnAccessScanner["counters"], outcome: string): void {
    this.counters[name]++;
    outcomes.inc({ outcome });
  }

  private verdict(clean: boolean, ev: AccessEvent, block: boolean): boolean {
    if (clean) return true;
    if (block) {
      this.count("blocked", "blocked");
      this.o.emit("on-access-blocked", { path: ev.path, pid: ev.pid, kind: ev.kind });
    }
    return !block;
  }

  /** True when nothing stands against the bytes. */
  private async judge(report: ScanReport, bytes: Uint8Array, path: string): Promise<boolean> {
    if (report.suppressed) this.count("suppressed", "suppressed");
    const standing = report.detections.filter((d) => d.verdict !== "ignored");
    if (standing.length === 0) return true;
    // Reputation matters only for a detection: asked then, so a clean file costs one IPC call, not two.
    const sha256 = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
    if (await this.highReputation(sha256)) {
      this.count("highReputation", "high-reputation");
      return true;
    }
    this.counters.detections += standing.length;
    outcomes.inc({ outcome: "detected" });
    for (const d of report.detections) {
      if (d.live?.status === "failed" && d.live.reason === "rate-limited") this.defer(d.sha256, d.name, path);
    }
    return false;
  }

  private async highReputation(sha256: string): Promise<boolean> {
    try {
      const [a] = (await this.o.call("LocalRepData", "lookupMany", { items: [{ sha256 }] })) as RepAnswer[];
      return a?.band === "high";
    } catch {
      return false; // No reputation data: nothing is excluded by it.
    }
  }

  private defer(sha256: string, name: string, path: string): void {
    if (this.o.exclusions?.().file("lookups", path, sha256)) return;
    if (this.deferred.length >= DEFERRED_MAX) {
      this.counters.deferredDropped++;
      return;
    }
    this.count("deferredLookups", "deferred-lookup");
    this.deferred.push({ sha256, name, path });
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.deferred.length === 0 || !this.sxl) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.retryDeferred().finally(() => this.scheduleRetry());
    }, this.o.retryMs ?? 1000);
    this.retryTimer.unref?.();
  }

  /** Asks the queued lookups while the rate limiter lets us; answers arrive as events. */
  async retryDeferred(): Promise<void> {
    const sxl = this.sxl;
    if (!sxl) return;
    while (this.deferred.length > 0) {
      const d = this.deferred[0]!;
      const r = await sxl.lookup(d.sha256, d.name);
      if (r.status === "failed" && r.reason === "rate-limited") return;
      this.deferred.shift();
      this.counters.deferredResolved++;
      this.o.emit("scan-lookup-resolved", {
        source: "on-access",
        target: d.path,
        name: d.name,
        sha256: d.sha256,
        live: r.status,
        ...(r.status === "answered" ? { verdict: r.verdict } : {}),
      });
      if (r.status === "answered" && r.verdict === "ignore") {
        // A known false positive: forget the cached verdicts so the file is allowed next time.
        this.cache.clear();
      }
    }
  }

  /** The file was written (the sensor saw it closed after writing): its verdict as it is now is void. */
  forgetFile(f: FileIdentity): void {
    this.cache.delete(keyOf(f));
  }

  /** New content: every cached verdict (ours and the sensor's) is void; scans in flight are not cached. */
  forgetVerdicts(): void {
    this.epoch++;
    this.cache.clear();
    this.o.onForget?.();
  }

  /** `sensorHits`: opens the sensor answered from its AllowCache (they never reached decide). */
  stats(sensorHits = 0): Record<string, unknown> {
    const hits = this.counters.cacheHits + this.counters.pendingHits + sensorHits;
    const lookups = hits + this.counters.cacheMisses;
    return {
      mode: this.o.config.mode,
      ...this.counters,
      cacheHits: hits,
      cacheHitRate: lookups === 0 ? 0 : Math.round((hits / lookups) * 1000) / 1000,
      cacheEntries: this.cache.size,
      batches: this.batcher.counters.batches,
      filesPerBatch:
        this.batcher.counters.batches === 0
          ? 0
          : Math.round((this.batcher.counters.batchedFiles / this.batcher.counters.batches) * 10) / 10,
      deferredPending: this.deferred.length,
    };
  }

  stop(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }
}
