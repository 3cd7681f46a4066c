/**
 * The I/O half of the live-model gate (T3/T4, type-rules.ts): which models a
 * package carries, and the fleet telemetry the gate judges them by. Called by
 * `release start` before anything is staged or published.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { UpdateError } from "../core/errors.ts";
import type { ReleaseConfig } from "./config.ts";
import type { Release } from "./state.ts";
import { TelemetryStore } from "./telemetry/store.ts";
import { liveGate, type ModelRef } from "./type-rules.ts";

const ModelHead = z.object({ name: z.string(), mode: z.enum(["telemetry", "live"]) });

/** The models in an MLModel payload (DIR/manifest.json), or null for a payload without any. */
export function modelsIn(files: Map<string, Uint8Array>): ModelRef[] | null {
  const out: ModelRef[] = [];
  for (const [path, bytes] of files) {
    if (!/^[^/]+\/manifest\.json$/.test(path)) continue;
    try {
      const m = ModelHead.safeParse(JSON.parse(new TextDecoder().decode(bytes)));
      if (m.success) out.push({ name: m.data.name, mode: m.data.mode });
    } catch {
      // Not a model manifest: the agent's rules (M1) judge the payload, not the release engine.
    }
  }
  return out.length ? out : null;
}

/** Throws REL_LIVE_GATE when a live model of this release has not earned its way out of telemetry. */
export function checkLiveGate(
  config: ReleaseConfig,
  type: string,
  models: ModelRef[],
  history: Release[],
  now: Date,
  file: string,
): string[] {
  const rules = config.types?.[type];
  if (!rules?.liveGate || !models.some((m) => m.mode === "live")) return [];
  const dbPath = join(config.paths.stateDir, "telemetry.sqlite");
  const store = existsSync(dbPath) ? new TelemetryStore(dbPath) : null;
  try {
    const v = liveGate(
      rules,
      type,
      models,
      history,
      (model, since) => store?.mlEvidence(model, since) ?? { scores: 0, over: 0, agents: 0 },
      now,
    );
    if (!v.allowed)
      throw new UpdateError(
        "REL_LIVE_GATE",
        `${file}: ${type} live model not allowed yet: ${v.reasons.join("; ")}`,
        {
          file,
          details: { reasons: v.reasons },
        },
      );
    return v.reasons;
  } finally {
    store?.close();
  }
}
