/**
 * The scan requester: the supervisor-side half of scanning. It reads what
 * is to be scanned (files, trees, process memory), streams the bytes to the
 * DatasetA scanner through the handler API (one call per small object, a
 * begin/chunk/end session for large ones), and acts on what comes back:
 *
 *   1. reputation — executables and detected objects are looked up in
 *      LocalRepData (by SHA-256, and by Authenticode signer when the scanner
 *      verified one);
 *   2. Live Protection — a lookup-enabled detection on a file that is not
 *      high-reputation asks SXL; the answer can ignore the detection (false
 *      positive), confirm it as malware or suspicious, or request a sample;
 *      no answer keeps the local verdict;
 *   3. samples — requested, allowed by policy (which requires lookups),
 *      an executable, under 10 MB, and the scanned file itself: queued,
 *      encrypted, for the uploader.
 *
 * Exclusions (core/exclusions): a path excluded for the scope is not read;
 * an object whose SHA-256 or verified signer is excluded has its detections
 * suppressed (exclusion-check.ts says why after the scan, not before).
 *
 * Every detection is published on the agent's event stream.
 */

import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import { basename } from "node:path";
import { describeError, HandlerError } from "../../../core/errors.ts";
import type { ExclusionMatcher } from "../../../core/exclusions/matcher.ts";
import type { ExclusionScope } from "../../../core/exclusions-config.ts";
import type { Lease } from "../../../core/host/shared-transfer.ts";
import type { MlScoring } from "../../MLModel/scan-hook.ts";
import type { ScanLimits, ScanOutcome } from "../engine.ts";
import type { SampleQueue, SampleUploader } from "../samples/queue.ts";
import type { SxlClient } from "../sxl/client.ts";
import { type LivePolicy, type ObjectReport, type Progress, type ScanReport, summarize } from "./report.ts";
import { durationOf, scannedBytes } from "./scan-metrics.ts";
import {
  type FileTarget,
  listFiles,
  presentRuns,
  ReadBuffer,
  readAt,
  readableRegions,
  readRuns,
  regionName,
  type SourceError,
  withFdAsync,
} from "./sources.ts";
import { CHUNK_BYTES, SAMPLE_MAX_BYTES, VerdictStage } from "./verdicts.ts";

export type {
  DetectionReport,
  ExecutableReport,
  FinalVerdict,
  LivePolicy,
  LookupReport,
  ObjectReport,
  Progress,
  ScanReport,
} from "./report.ts";
export { CHUNK_BYTES, SAMPLE_MAX_BYTES };

export type CallHandler = (type: string, method: string, args: unknown) => Promise<unknown>;

/** Regions larger than this and less than a quarter present are read page run by page run. */
const SPARSE_REGION_BYTES = 16 * 1024 * 1024;

export interface ScanServiceOptions {
  call: CallHandler;
  policy: LivePolicy;
  sxl?: SxlClient;
  samples?: { queue: SampleQueue; uploader?: SampleUploader };
  emit?: (type: string, fields: Record<string, unknown>) => void;
  limits?: Partial<ScanLimits>;
  /** ML models (handlers/MLModel): whole objects up to CHUNK_BYTES are scored after the signatures. */
  ml?: MlScoring;
  /**
   * The agent's exclusions (core/exclusions): scope "scan" (on-access: "onAccess") skips files by
   * path and suppresses detections by digest or signer; "lookups" skips Live Protection.
   */
  exclusions?: () => ExclusionMatcher;
  /**
   * The scanner host's transfer region (core/host/shared-transfer.ts), when it has one: files are read
   * straight into it and reach the scanner by reference, not copied through its pipe.
   */
  transfer?: () => { lease(bytes: number): Lease | undefined } | undefined;
}

export class ScanService {
  /** Reputation, Live Protection, samples and events for each scanned object (verdicts.ts). */
  private readonly verdicts: VerdictStage;

  constructor(private readonly o: ScanServiceOptions) {
    this.verdicts = new VerdictStage(o);
  }

  /** Room for `bytes` in the scanner's transfer region, or undefined (send ordinary bytes). Release it once scanned. */
  lease(bytes: number): Lease | undefined {
    return bytes > 0 ? this.o.transfer?.()?.lease(bytes) : undefined;
  }

  /** Scans files and directory trees. */
  async scanPaths(
    paths: string[],
    opts: {
      onProgress?: (p: Progress) => void;
      onObject?: (r: ObjectReport) => void;
      /** Every matching signature per object (`agent scan --all-matches`); default: the first that stands. */
      allMatches?: boolean;
    } = {},
  ): Promise<ScanReport> {
    const started = performance.now();
    const errors: SourceError[] = [];
    const matcher = this.o.exclusions?.();
    const listed = listFiles(paths, errors);
    const files = matcher ? listed.filter((f) => !matcher.file("scan", f.path)) : listed;
    const excluded = listed.length - files.length;
    const progress: Progress = {
      phase: "scanning",
      filesDone: 0,
      filesTotal: files.length,
      bytesDone: 0,
      bytesTotal: files.reduce((n, f) => n + f.size, 0),
    };
    opts.onProgress?.(progress);
    const reports: ObjectReport[] = [];
    // One read buffer for the whole tree (files are scanned one after another; each call has its own).
    const buffer = new ReadBuffer(CHUNK_BYTES);
    for (const f of files) {
      progress.current = f.path;
      try {
        const r = await this.scanFile(f, "scan", buffer, opts.allMatches);
        reports.push(r);
        opts.onObject?.(r);
      } catch (e) {
        const d = describeError(e);
        const code = (e as NodeJS.ErrnoException).code ?? d.code;
        errors.push({ path: f.path, code, message: d.message });
        // Without a loaded dataset nothing can be scanned: stop rather than fail every file.
        if (d.code === "HND_NOT_LOADED") break;
      }
      progress.filesDone++;
      progress.bytesDone += f.size;
      opts.onProgress?.(progress);
    }
    progress.phase = "done";
    progress.current = undefined;
    opts.onProgress?.(progress);
    const report = summarize(paths, reports, errors, performance.now() - started);
    return excluded > 0 ? { ...report, excluded } : report;
  }

  /** Scans bytes handed over by a caller (POST /v1/scan with a body; on-access, with scope "onAccess"). */
  async scanBytes(
    bytes: Uint8Array,
    name: string,
    opts: { source?: string; scope?: ExclusionScope } = {},
  ): Promise<ScanReport> {
    const started = performance.now();
    const outcome = await this.sendBytes(bytes, basename(name) || "bytes", false);
    scannedBytes.inc({ source: opts.source ?? "bytes" }, bytes.length);
    const report = await this.verdicts.finish(name, outcome, () => bytes, opts.source, opts.scope ?? "scan");
    const ms = performance.now() - started;
    (opts.source === "on-access" ? durationOf.onAccess : durationOf.bytes).observe(ms / 1000);
    return summarize([name], [report], [], ms);
  }

  /**
   * Scans many small objects (each ≤ CHUNK_BYTES, together ≤ CHUNK_BYTES) in one call to the scanner,
   * then applies reputation, Live Protection and sample policy to each as scanBytes does. On-access
   * batches its files this way: one IPC round trip instead of one per file. `executableReputation:
   * false` asks LocalRepData only about detections (on-access uses no tag of a clean executable, and
   * the question costs a round trip per executable).
   */
  async scanBytesMany(
    items: { bytes: Uint8Array; name: string }[],
    opts: { source?: string; scope?: ExclusionScope; executableReputation?: boolean } = {},
  ): Promise<ScanReport[]> {
    const started = performance.now();
    const { outcomes } = (await this.o.call("DatasetA", "scanMany", {
      items: items.map((i) => ({ bytes: i.bytes, name: basename(i.name) || "bytes" })),
      limits: this.limits(false),
    })) as { outcomes: ScanOutcome[] };
    if (outcomes?.length !== items.length)
      throw new HandlerError(
        "HND_DATASETA_BAD_ANSWER",
        `scanMany: ${items.length} objects sent, other count back`,
      );
    const reports: ScanReport[] = [];
    for (const [i, item] of items.entries()) {
      scannedBytes.inc({ source: opts.source ?? "bytes" }, item.bytes.length);
      const report = await this.verdicts.finish(
        item.name,
        outcomes[i]!,
        () => item.bytes,
        opts.source,
        opts.scope ?? "scan",
        opts.executableReputation ?? true,
      );
      const ms = performance.now() - started;
      (opts.source === "on-access" ? durationOf.onAccess : durationOf.bytes).observe(ms / 1000);
      reports.push(summarize([item.name], [report], [], ms));
    }
    return reports;
  }

  /** Scans the readable memory of a process. */
  async scanProcess(
    pid: number,
    opts: { onProgress?: (p: Progress) => void; allMatches?: boolean } = {},
  ): Promise<ScanReport> {
    const started = performance.now();
    const target = `pid:${pid}`;
    const errors: SourceError[] = [];
    const reports: ObjectReport[] = [];
    const regions = readableRegions(pid);
    const progress: Progress = {
      phase: "scanning",
      filesDone: 0,
      filesTotal: regions.length,
      bytesDone: 0,
      bytesTotal: regions.reduce((n, r) => n + Math.min(r.present, r.end - r.start), 0),
    };
    const fd = openSync(`/proc/${pid}/mem`, "r");
    try {
      for (const r of regions) {
        const name = regionName(pid, r);
        progress.current = name;
        try {
          const size = r.end - r.start;
          // Mostly-untouched reservations: read only the pages that hold something.
          const runs: [number, number][] =
            size > SPARSE_REGION_BYTES && r.present * 4 < size ? presentRuns(pid, r) : [[r.start, r.end]];
          const total = runs.reduce((n, [a, b]) => n + (b - a), 0);
          const read = (pos: number, len: number) => readRuns(fd, runs, pos, len);
          if (total > 0) {
            const regionStarted = performance.now();
            const outcome = await this.sendStream(name, total, read, opts.allMatches ?? false);
            scannedBytes.inc({ source: "memory" }, outcome.size);
            reports.push(await this.verdicts.finish(name, outcome, null));
            durationOf.memory.observe((performance.now() - regionStarted) / 1000);
          }
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          // Regions can vanish or refuse reads (guard pages, device mappings) while we look.
          errors.push({ path: name, code: err.code ?? describeError(e).code, message: err.message });
          if (describeError(e).code === "HND_NOT_LOADED") break;
        }
        progress.filesDone++;
        progress.bytesDone += Math.min(r.present, r.end - r.start);
        opts.onProgress?.(progress);
      }
    } finally {
      closeSync(fd);
    }
    return summarize([target], reports, errors, performance.now() - started);
  }

  /**
   * One file. Its bytes live in `buffer` until the next file is read, so they are still
   * there when finish() wants them for a sample (the frame sent to the scanner is a copy).
   */
  private async scanFile(
    f: FileTarget,
    scope: ExclusionScope,
    buffer: ReadBuffer,
    allMatches = false,
  ): Promise<ObjectReport> {
    const started = performance.now();
    let keep: Uint8Array | undefined;
    let lease: Lease | undefined;
    try {
      const outcome = await withFdAsync(f.fsPath, async (fd) => {
        const size = fstatSync(fd).size;
        if (size <= CHUNK_BYTES) {
          lease = this.lease(size);
          // Into the shared region when a lease is free (the host reads it there, no copy), else the tree's buffer.
          const bytes = lease ? readAt(fd, 0, size, lease.bytes) : buffer.read(fd, 0, size);
          if (bytes.length <= SAMPLE_MAX_BYTES) keep = bytes;
          return this.sendBytes(bytes, basename(f.path), allMatches);
        }
        return this.sendStream(
          basename(f.path),
          size,
          (pos, len, into) => (into ? readAt(fd, pos, len, into) : buffer.read(fd, pos, len)),
          allMatches,
        );
      });
      scannedBytes.inc({ source: "file" }, outcome.size);
      // Files between the chunk size and the sample limit are read again only if a sample is wanted.
      const report = await this.verdicts.finish(
        f.path,
        outcome,
        () => keep ?? new Uint8Array(readFileSync(f.fsPath)),
        undefined,
        scope,
      );
      durationOf.file.observe((performance.now() - started) / 1000);
      return report;
    } finally {
      // `keep` is a view of the lease: nothing uses it once the report is made.
      (lease as Lease | undefined)?.release();
    }
  }

  /**
   * The limits sent with a scan. First match per object unless asked for all:
   * what clamscan does by default, and all that on-access (which blocks on any
   * detection) and a verdict need.
   */
  private limits(allMatches: boolean): Partial<ScanLimits> {
    return { ...this.o.limits, firstMatch: !allMatches };
  }

  private async sendBytes(bytes: Uint8Array, name: string, allMatches: boolean): Promise<ScanOutcome> {
    if (bytes.length <= CHUNK_BYTES) {
      return (await this.o.call("DatasetA", "scan", {
        bytes,
        name,
        limits: this.limits(allMatches),
      })) as ScanOutcome;
    }
    return this.sendStream(name, bytes.length, (pos, len) => bytes.subarray(pos, pos + len), allMatches);
  }

  /** A begin/chunk/end session; `read` supplies each chunk (the last may be short), into a lease if given. */
  private async sendStream(
    name: string,
    size: number,
    read: (pos: number, len: number, into?: Uint8Array) => Uint8Array,
    allMatches: boolean,
  ): Promise<ScanOutcome> {
    if (size <= CHUNK_BYTES) return this.sendBytes(read(0, size), name, allMatches);
    const { session } = (await this.o.call("DatasetA", "begin", {
      name,
      limits: this.limits(allMatches),
    })) as {
      session: string;
    };
    try {
      for (let pos = 0; pos < size; pos += CHUNK_BYTES) {
        const want = Math.min(CHUNK_BYTES, size - pos);
        const lease = this.lease(want);
        try {
          const chunk = read(pos, want, lease?.bytes);
          if (chunk.length === 0) break;
          await this.o.call("DatasetA", "chunk", { session, bytes: chunk });
          if (chunk.length < want) break;
        } finally {
          lease?.release();
        }
      }
      return (await this.o.call("DatasetA", "end", { session })) as ScanOutcome;
    } catch (e) {
      await this.o.call("DatasetA", "abort", { session }).catch(() => {});
      throw e;
    }
  }
}
