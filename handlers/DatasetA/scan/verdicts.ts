/**
 * What the scan requester does with each scanned object once the scanner
 * has answered (service.ts steps 1–3): exclusions by digest or signer,
 * reputation from LocalRepData, Live Protection for lookup-enabled
 * detections, sample submission, live ML scoring, and one `scan-detection`
 * event per detection. Reading and sending bytes stays in service.ts.
 */

import type { ExclusionScope } from "../../../core/exclusions-config.ts";
import type { RepAnswer } from "../../LocalRepData/index.ts";
import type { Detection, ScanOutcome } from "../engine.ts";
import type { SxlResult } from "../sxl/client.ts";
import { objectExclusion, validSigner } from "./exclusion-check.ts";
import type { DetectionReport, ExecutableReport, LookupReport, ObjectReport } from "./report.ts";
import { detectionsTotal, lookupsTotal } from "./scan-metrics.ts";
import type { ScanServiceOptions } from "./service.ts";

/** Objects up to this size go in one call; larger ones in a session of chunks this size. */
export const CHUNK_BYTES = 8 * 1024 * 1024;
export const SAMPLE_MAX_BYTES = 10 * 1024 * 1024;
const EXECUTABLE_KINDS = new Set(["pe", "elf", "macho"]);

export class VerdictStage {
  constructor(private readonly o: ScanServiceOptions) {}

  private async reputations(items: { sha256: string; signer?: string }[]): Promise<Map<string, RepAnswer>> {
    const out = new Map<string, RepAnswer>();
    if (items.length === 0) return out;
    try {
      const answers = (await this.o.call("LocalRepData", "lookupMany", { items })) as RepAnswer[];
      for (const [i, a] of answers.entries()) out.set(repKey(items[i]!), a);
    } catch {
      // No reputation data installed (or the handler failed): everything is simply "unknown".
    }
    return out;
  }

  /** Applies reputation, Live Protection and sample policy to one scanned object. */
  async finish(
    target: string,
    o: ScanOutcome,
    bytes: (() => Uint8Array) | null,
    source?: string,
    scope?: ExclusionScope,
    executableReputation = true,
  ): Promise<ObjectReport> {
    const signerOf = (path: string[]) => validSigner(o, path);
    const excluded = objectExclusion(this.o.exclusions?.(), scope, target, o);
    const kept = o.detections.filter((d) => !excluded.detection(d));
    for (const d of o.detections) {
      if (!kept.includes(d)) detectionsTotal.inc({ kind: d.kind, verdict: "excluded" });
    }
    const queries = [
      ...(executableReputation ? o.executables : []).map((x) => ({
        sha256: x.sha256,
        ...(signerOf(x.path) ? { signer: signerOf(x.path) } : {}),
      })),
      ...kept.map((d) => ({
        sha256: d.sha256,
        ...(signerOf(d.path) ? { signer: signerOf(d.path) } : {}),
      })),
    ];
    const unique = [...new Map(queries.map((q) => [repKey(q), q])).values()];
    const reps = await this.reputations(unique);
    const repFor = (sha256: string, path: string[]) => reps.get(repKey({ sha256, signer: signerOf(path) }));

    const detections: DetectionReport[] = [];
    for (const d of kept) {
      const rep = repFor(d.sha256, d.path);
      const report: DetectionReport = {
        ...d,
        target,
        verdict: d.kind === "heuristic" ? "suspicious" : "malware",
        ...(rep?.source ? { reputation: { score: rep.score, band: rep.band, source: rep.source } } : {}),
      };
      if (d.lookup) {
        const lookup = await this.lookup(d, rep, target, signerOf(d.path));
        report.live = lookup;
        if (lookup.status === "answered") {
          if (lookup.verdict === "ignore") report.verdict = "ignored";
          else if (lookup.verdict === "suspicious") report.verdict = "suspicious";
          else if (lookup.verdict === "malware") report.verdict = "malware";
          if (lookup.sample) report.sample = await this.sample(d, target, o, bytes, lookup);
        }
      }
      detectionsTotal.inc({ kind: d.kind, verdict: report.verdict });
      this.o.emit?.("scan-detection", {
        target,
        name: d.name,
        detectionKind: d.kind,
        path: d.path,
        sha256: d.sha256,
        verdict: report.verdict,
        ...(source ? { source } : {}),
        ...(report.live ? { live: report.live.status } : {}),
        ...(report.sample ? { sample: report.sample.status } : {}),
      });
      detections.push(report);
    }
    if (this.o.ml && bytes && o.size <= CHUNK_BYTES && !excluded.whole)
      detections.push(...(await this.mlDetections(target, o, bytes, source)));
    const executables: ExecutableReport[] = o.executables.map((x) => {
      const rep = repFor(x.sha256, x.path);
      const excludedBy = excluded.executable(x);
      return {
        ...x,
        target,
        ...(excludedBy ? { excluded: excludedBy } : {}),
        ...(rep?.source
          ? {
              reputation: {
                score: rep.score,
                band: rep.band,
                source: rep.source,
                ...(rep.signerName ? { signerName: rep.signerName } : {}),
              },
            }
          : {}),
      };
    });
    return {
      target,
      size: o.size,
      kind: o.kind,
      ...(o.sha256 ? { sha256: o.sha256 } : {}),
      detections,
      ...(kept.length < o.detections.length ? { suppressed: o.detections.length - kept.length } : {}),
      executables,
      limits: o.limits.map((l) => ({ ...l, target })),
      durationMs: o.durationMs,
    };
  }

  /** Live ML findings as detections of kind "ml"; telemetry models never reach this list (scan-hook.ts). */
  private async mlDetections(
    target: string,
    o: ScanOutcome,
    bytes: () => Uint8Array,
    source?: string,
  ): Promise<DetectionReport[]> {
    const findings = await this.o.ml!.score(bytes(), o.sha256);
    return findings.map((f) => {
      const report: DetectionReport = {
        name: `Outpost.ML.${f.model}`,
        kind: "ml",
        path: [],
        lookup: false,
        sha256: f.sha256,
        size: o.size,
        objectKind: o.kind,
        detail: `score ${f.score.toFixed(4)} ≥ threshold ${f.threshold}`,
        score: f.score,
        target,
        // A model's score is evidence, not an identification: suspicious, never malware.
        verdict: "suspicious",
      };
      detectionsTotal.inc({ kind: "ml", verdict: report.verdict });
      this.o.emit?.("scan-detection", {
        target,
        name: report.name,
        detectionKind: "ml",
        path: [],
        sha256: f.sha256,
        verdict: report.verdict,
        score: f.score,
        ...(source ? { source } : {}),
      });
      return report;
    });
  }

  private async lookup(
    d: Detection,
    rep: RepAnswer | undefined,
    target: string,
    signer: string | undefined,
  ): Promise<LookupReport> {
    if (this.o.exclusions?.().file("lookups", target, d.sha256, signer)) {
      lookupsTotal.inc({ outcome: "skipped-excluded" });
      return { status: "skipped", reason: "excluded" };
    }
    if (rep?.band === "high") {
      lookupsTotal.inc({ outcome: "skipped-high-reputation" });
      return { status: "skipped", reason: "high-reputation" };
    }
    if (!this.o.policy.lookups || !this.o.sxl) {
      lookupsTotal.inc({ outcome: "disabled" });
      return { status: "disabled" };
    }
    const r: SxlResult = await this.o.sxl.lookup(d.sha256, d.name);
    lookupsTotal.inc({ outcome: r.status === "failed" ? `failed-${r.reason}` : r.status });
    if (r.status === "answered")
      return { status: "answered", verdict: r.verdict, sample: r.sample, transport: r.transport };
    if (r.status === "no-information") return { status: "no-information", transport: r.transport };
    return { status: "failed", reason: r.reason };
  }

  private async sample(
    d: Detection,
    target: string,
    o: ScanOutcome,
    bytes: (() => Uint8Array) | null,
    lookup: LookupReport,
  ): Promise<{ status: string; key?: string; reason?: string }> {
    if (!this.o.policy.samples || !this.o.samples) return { status: "not-allowed" };
    if (d.path.length > 0 || !bytes)
      return { status: "not-submitted", reason: "only whole files are submitted" };
    if (!EXECUTABLE_KINDS.has(o.kind)) return { status: "not-submitted", reason: "not an executable" };
    if (o.size >= SAMPLE_MAX_BYTES) return { status: "not-submitted", reason: "10 MB or larger" };
    const data = bytes();
    const digest = new Bun.CryptoHasher("sha256").update(data).digest("hex");
    if (digest !== d.sha256) return { status: "not-submitted", reason: "file changed since it was scanned" };
    const r = await this.o.samples.queue.enqueue({
      data,
      path: target,
      sha256: d.sha256,
      fileKind: o.kind,
      detection: { name: d.name, kind: d.kind, ...(d.source ? { source: d.source } : {}) },
      sxl: { verdict: lookup.verdict ?? "unknown", sample: true },
    });
    if (r.status === "queued") this.o.samples.uploader?.kick();
    return r.status === "refused"
      ? { status: r.status, key: r.key, reason: r.reason }
      : { status: r.status, key: r.key };
  }
}

function repKey(q: { sha256: string; signer?: string }): string {
  return `${q.sha256}/${q.signer ?? ""}`;
}
