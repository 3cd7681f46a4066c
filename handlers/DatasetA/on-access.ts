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
 * - Exclusions: the agent's state dir, `excludePaths`, and files whose
 *   SHA-256 LocalRepData rates high (asked only when the scan detects
 *   something, so a clean file costs one IPC call).
 * - Live Protection: a lookup over the local rate limit is not skipped but
 *   queued and asked later; the local verdict stands meanwhile (in block
 *   mode the open is refused). Status counts deferred lookups.
 */
import { fstatSync, readSync } from "node:fs";
import type { ExclusionMatcher } from "../../core/exclusions/matcher.ts";
import { metrics } from "../../core/metrics.ts";
import type { AccessEvent } from "../../core/sensors/access.ts";
import type { OnAccessConfig } from "../../core/sensors-config.ts";
import type { RepAnswer } from "../LocalRepData/index.ts";
import type { ScanService } from "./scan/service.ts";
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
}

interface Deferred {
  sha256: string;
  name: string;
  path: string;
}

const CACHE_MAX = 100_000;

const outcomes = metrics.counter(
  "outpost_onaccess_files_total",
  "On-access decisions, by outcome (cache-hit, scanned, detected, blocked, excluded, too-large, changed, deferred-lookup)",
);
const DEFERRED_MAX = 10_000;

export class OnAccessScanner {
  private readonly cache = new Map<string, boolean>();
  private readonly deferred: Deferred[] = [];
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly excludes: string[];
  readonly counters = {
    scanned: 0,
    cacheHits: 0,
    cacheMisses: 0,
    detections: 0,
    blocked: 0,
    excluded: 0,
    highReputation: 0,
    tooLarge: 0,
    changedDuringScan: 0,
    errors: 0,
    deferredLookups: 0,
    deferredResolved: 0,
    deferredDropped: 0,
  };

  constructor(private readonly o: OnAccessOptions) {
    const dirPrefix = (p: string) => (p.endsWith("/") ? p : `${p}/`);
    this.excludes = [o.stateDir, ...o.config.excludePaths].map(dirPrefix);
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
        return this.verdict(hit, ev, block);
      }
      this.counters.cacheMisses++;
      if (before.size > this.o.config.maxFileBytes) {
        this.count("tooLarge", "too-large");
        return true;
      }
      const bytes = readAll(ev.fd, before.size);
      const clean = await this.scan(bytes, ev);
      const after = fileKey(ev.fd);
      if (after.key !== before.key) {
        // Changed under us: what we scanned may not be what will be read. Never cache it; look again.
        this.count("changedDuringScan", "changed");
        if (!clean) return this.verdict(false, ev, block);
        continue;
      }
      if (this.cache.size >= CACHE_MAX) this.cache.clear();
      this.cache.set(before.key, clean);
      return this.verdict(clean, ev, block);
    }
    // Still changing after three scans: reported, not cached, allowed (writers are mid-write).
    this.o.emit("on-access-unstable", { path: ev.path, pid: ev.pid });
    return true;
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
  private async scan(bytes: Uint8Array, ev: AccessEvent): Promise<boolean> {
    this.count("scanned", "scanned");
    const report = await this.service.scanBytes(bytes, ev.path, { source: "on-access" });
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
      if (d.live?.status === "failed" && d.live.reason === "rate-limited")
        this.defer(d.sha256, d.name, ev.path);
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

  stats(): Record<string, unknown> {
    const lookups = this.counters.cacheHits + this.counters.cacheMisses;
    return {
      mode: this.o.config.mode,
      ...this.counters,
      cacheHitRate: lookups === 0 ? 0 : Math.round((this.counters.cacheHits / lookups) * 1000) / 1000,
      cacheEntries: this.cache.size,
      deferredPending: this.deferred.length,
    };
  }

  stop(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }
}

function fileKey(fd: number): { key: string; size: number } {
  const st = fstatSync(fd, { bigint: true });
  return {
    key: `${st.dev}:${st.ino}:${st.mtimeNs}:${st.ctimeNs}:${st.size}`,
    size: Number(st.size),
  };
}

function readAll(fd: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let got = 0;
  while (got < size) {
    const n = readSync(fd, out, got, size - got, got);
    if (n <= 0) break;
    got += n;
  }
  return out.subarray(0, got);
}
