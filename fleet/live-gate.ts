/**
 * The I/O half of the live-model gate (T3/T4, type-rules.ts): which models a
 * package carries, and the fleet telemetry the gate judges them by. Called by
 * `release start` before anything is staged or published.
 */
import { z } from "zod";
import { UpdateError } from "../core/errors.ts";
import { lazySchema } from "../core/schema/lazy-schema.ts";
import type { ReleaseConfig } from "./config.ts";
import type { Driver } from "./db/driver.ts";
import type { Release } from "./state.ts";
import { TelemetryStore } from "./telemetry/store.ts";
import { liveGate, type ModelEvidence, type ModelRef } from "./type-rules.ts";

const ModelHead = lazySchema(() => z.object({ name: z.string(), mode: z.enum(["telemetry", "live"]) }));

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

/**
 * Throws REL_LIVE_GATE when a live model of this release has not earned its way out of telemetry. The
 * evidence is the fleet database's telemetry (every replica's uploads). `liveGate` is pure and asks for
 * evidence synchronously, so it runs once to learn which (model, since) it needs, and again on the answers.
 */
export async function checkLiveGate(
  config: ReleaseConfig,
  db: Driver,
  type: string,
  models: ModelRef[],
  history: Release[],
  now: Date,
  file: string,
): Promise<string[]> {
  const rules = config.types?.[type];
  if (!rules?.liveGate || !models.some((m) => m.mode === "live")) return [];
  const store = new TelemetryStore(db);
  const none: ModelEvidence = { scores: 0, over: 0, agents: 0 };
  const asked = new Map<string, { model: string; since: string }>();
  const keyOf = (model: string, since: string) => JSON.stringify([model, since]);
  liveGate(
    rules,
    type,
    models,
    history,
    (model, since) => {
      asked.set(keyOf(model, since), { model, since });
      return none;
    },
    now,
  );
  const evidence = new Map<string, ModelEvidence>();
  for (const [k, { model, since }] of asked) evidence.set(k, await store.mlEvidence(model, since));
  const v = liveGate(
    rules,
    type,
    models,
    history,
    (model, since) => evidence.get(keyOf(model, since)) ?? none,
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
}
