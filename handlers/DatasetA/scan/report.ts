/**
 * What a scan reports (object by object and summed up): the shapes `agent scan --json`,
 * `POST /v1/scan` and on-access share, and the sum of object reports.
 */

import type { RepAnswer } from "../../LocalRepData/index.ts";
import type { Detection, ExecutableFound, LimitNote } from "../engine.ts";
import type { SourceError } from "./sources.ts";

export interface LivePolicy {
  lookups: boolean;
  samples: boolean;
}

export type FinalVerdict = "malware" | "suspicious" | "ignored";

export interface LookupReport {
  status: "answered" | "no-information" | "failed" | "skipped" | "disabled";
  verdict?: string;
  sample?: boolean;
  transport?: string;
  reason?: string;
}

export interface DetectionReport extends Detection {
  /** The file or memory region scanned. */
  target: string;
  verdict: FinalVerdict;
  /** What Live Protection said (only for lookup-enabled detections). */
  live?: LookupReport;
  reputation?: Pick<RepAnswer, "score" | "band" | "source">;
  /** kind "ml": the live model's score (its threshold is in `detail`). */
  score?: number;
  sample?: { status: string; key?: string; reason?: string };
}

export interface ExecutableReport extends ExecutableFound {
  target: string;
  /** An exclusion names this executable's digest or (verified) signer. */
  excluded?: "sha256" | "signer";
  reputation?: Pick<RepAnswer, "score" | "band" | "source" | "signerName">;
}

export interface ObjectReport {
  target: string;
  size: number;
  kind: string;
  sha256?: string;
  detections: DetectionReport[];
  /** Detections left out because the object's SHA-256 or verified signer is excluded. */
  suppressed?: number;
  executables: ExecutableReport[];
  limits: (LimitNote & { target: string })[];
  durationMs: number;
}

export interface ScanReport {
  targets: string[];
  objects: number;
  bytes: number;
  detections: DetectionReport[];
  /** Detections Live Protection ignored as known false positives. */
  ignored: number;
  /** Every executable met (scanned files and archive members), with its reputation tag. */
  executables: ExecutableReport[];
  limits: (LimitNote & { target: string })[];
  errors: SourceError[];
  durationMs: number;
  /** True when at least one detection stands (what makes `agent scan` exit 1). */
  found: boolean;
  /** Files left out because an exclusion (scope "scan") covers them; absent when none. */
  excluded?: number;
  /** Detections suppressed because the object's SHA-256 or verified signer is excluded; absent when none. */
  suppressed?: number;
}

export interface Progress {
  phase: "listing" | "scanning" | "done";
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
  current?: string;
}

export function summarize(
  targets: string[],
  reports: ObjectReport[],
  errors: SourceError[],
  durationMs: number,
): ScanReport {
  const detections = reports.flatMap((r) => r.detections);
  const suppressed = reports.reduce((n, r) => n + (r.suppressed ?? 0), 0);
  return {
    targets,
    objects: reports.length,
    bytes: reports.reduce((n, r) => n + r.size, 0),
    detections,
    ignored: detections.filter((d) => d.verdict === "ignored").length,
    executables: reports.flatMap((r) => r.executables),
    limits: reports.flatMap((r) => r.limits),
    errors,
    durationMs,
    found: detections.some((d) => d.verdict !== "ignored"),
    ...(suppressed > 0 ? { suppressed } : {}),
  };
}
