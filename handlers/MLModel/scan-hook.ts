/**
 * The requester's half of ML scoring (supervisor side, beside the scan
 * requester): sends a scanned object's bytes to the MLModel handler in the
 * scanner group and decides what each score may become.
 *
 *   live       score ≥ threshold → a finding the scan report turns into a
 *              detection of kind `ml` (with the score)
 *   telemetry  a count in /metrics (outpost_ml_scores_total, by model, mode
 *              and band), which the telemetry report carries (TELEMSUP's
 *              allow-list) — never a finding, whatever the threshold
 *
 * The host's ML mode (agent.json `ml.mode`, policy, the `mlLive` flag —
 * core/ml-config.ts) is read at every object, so a change applies to the
 * next scan: `telemetry` counts every score and makes no finding, `off`
 * sends nothing to the models.
 *
 * A model the handler reports `faulted` (MAX_FAULTS fuel/trap faults) has its
 * version rolled back once, like content that crashes its host; the
 * handler has already switched it off. No MLModel installed costs one failed
 * call, then nothing for NEGATIVE_CACHE_MS.
 */
import { describeError } from "../../core/errors.ts";
import { metrics } from "../../core/metrics.ts";
import type { MlConfig } from "../../core/ml-config.ts";
import type { ScoreAnswer, ScoreRow } from "./index.ts";

export const NEGATIVE_CACHE_MS = 10_000;

const scoresTotal = metrics.counter(
  "outpost_ml_scores_total",
  "ML model scores, by model, mode (telemetry, live) and band (over or under the model's threshold)",
);
const faultsTotal = metrics.counter(
  "outpost_ml_faults_total",
  "ML model faults, by model and fault (fuel, trap, bad-score)",
);

export interface MlFinding {
  model: string;
  score: number;
  threshold: number;
  sha256: string;
}

export interface MlScoringOptions {
  call: (type: string, method: string, args: unknown) => Promise<unknown>;
  emit?: (type: string, fields: Record<string, unknown>) => void;
  /** Rolls the MLModel content back (the agent's rollback); called once per faulted version. */
  rollback?: () => Promise<unknown>;
  now?: () => number;
  /** The host's ML mode now (default live: each model's own mode decides). */
  mode?: () => MlConfig["mode"];
}

export class MlScoring {
  private absentUntil = 0;
  private rolledBack = new Set<string>();

  constructor(private readonly o: MlScoringOptions) {}

  /** Live findings for one whole object; telemetry scores go to /metrics only. */
  async score(bytes: Uint8Array, sha256?: string): Promise<MlFinding[]> {
    const now = this.o.now?.() ?? Date.now();
    const hostMode = this.o.mode?.() ?? "live";
    if (hostMode === "off" || now < this.absentUntil) return [];
    let r: ScoreAnswer;
    try {
      r = (await this.o.call("MLModel", "score", { bytes, ...(sha256 ? { sha256 } : {}) })) as typeof r;
    } catch (e) {
      const code = describeError(e).code;
      // Not installed (or not loaded yet): scanning goes on without models.
      if (code === "HND_NOT_LOADED" || code === "HND_UNKNOWN_TYPE")
        this.absentUntil = now + NEGATIVE_CACHE_MS;
      return [];
    }
    const findings: MlFinding[] = [];
    for (const row of r.results) {
      if (row.fault) {
        faultsTotal.inc({ model: row.model, fault: row.fault });
        if (row.faulted) await this.faulted(row, r.version);
        continue;
      }
      const over = row.score! >= row.threshold;
      // A live model on a host in telemetry mode is a telemetry model: counted, never a verdict.
      const mode = hostMode === "live" ? row.mode : "telemetry";
      scoresTotal.inc({ model: row.model, mode, band: over ? "over" : "under" });
      if (mode === "live" && over)
        findings.push({ model: row.model, score: row.score!, threshold: row.threshold, sha256: r.sha256 });
    }
    return findings;
  }

  /** A model that keeps faulting: its version goes, like content that crash-loops its host. */
  private async faulted(row: ScoreRow, version: number): Promise<void> {
    const key = `${version}`;
    if (this.rolledBack.has(key)) return;
    this.rolledBack.add(key);
    this.o.emit?.("ml-model-faulted", { model: row.model, version, fault: row.fault });
    try {
      await this.o.rollback?.();
    } catch (e) {
      this.o.emit?.("ml-rollback-failed", { model: row.model, version, ...describeError(e) });
    }
  }
}
