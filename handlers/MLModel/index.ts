/**
 * The MLModel content handler: WebAssembly models scored on scanned
 * objects, in the `scanner` group (no filesystem, no network). The payload
 * holds one folder per model — manifest.json, model.wasm, weights.bin,
 * golden.json (docs/ml.md). Every model passes rules M1–M11 (model.ts)
 * before the version can become active, so a bad model leaves the previous
 * version serving.
 *
 * API (JSON plus Uint8Array):
 *   score  { bytes, sha256? } → { kind, sha256, version, results: ScoreRow[] }
 *   models {} → the loaded models and their counters
 *
 * Features are extracted here, once per object, for every model that takes
 * the object's kind; live models score every such object, telemetry models
 * a deterministic `sampleRate` share of them (by SHA-256, so the same file is
 * always in or out of the sample). The handler only scores: what a score
 * means (a detection or a telemetry count) is the requester's job
 * (scan-hook.ts), which is why a telemetry model cannot reach a verdict.
 */

import { sha256Hex } from "../../core/crypto/digest.ts";
import { HandlerError } from "../../core/errors.ts";
import { type ContentView, defineParsedHandler } from "../../core/handler/contract.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { detectKind } from "../_shared/filetype/filetype.ts";
import { FEATURE_VERSIONS } from "./features.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };
import { type InputKind, MODEL_FILES, Model } from "./model.ts";

/** A model that faults this many times is switched off and its version handed back for rollback. */
export const MAX_FAULTS = 3;
const MAX_BYTES = 16 * 1024 * 1024;

export const ScoreArgs = lazySchema(() =>
  z.strictObject({
    bytes: z
      .instanceof(Uint8Array)
      .check(z.refine((b) => b.length <= MAX_BYTES, `at most ${MAX_BYTES} bytes`)),
    sha256: z.optional(z.string().check(z.regex(/^[0-9a-f]{64}$/))),
  }),
);

export interface ScoreRow {
  model: string;
  mode: "telemetry" | "live";
  threshold: number;
  score?: number;
  /** Present when this call faulted (fuel, trap, bad-score). */
  fault?: string;
  /** The model has faulted MAX_FAULTS times: switched off, the version should be rolled back. */
  faulted?: boolean;
}

interface Slot {
  model: Model;
  scores: number;
  over: number;
  faults: number;
  lastFault: string | null;
  maxMs: number;
  totalMs: number;
}

export interface LoadedModels {
  version: number;
  slots: Slot[];
  extractMs: number;
  objects: number;
}

/** Groups payload files by model folder; anything else in the payload is refused. */
export async function openModels(
  view: Pick<ContentView, "files" | "read" | "type" | "version">,
): Promise<Model[]> {
  const dirs = new Map<string, Set<string>>();
  for (const f of view.files) {
    const parts = f.split("/");
    if (parts.length !== 2 || !(MODEL_FILES as readonly string[]).includes(parts[1]!))
      throw new HandlerError(
        "HND_ML_INVALID",
        `${f}: not part of a model folder (DIR/{${MODEL_FILES.join(",")}})`,
        {
          file: f,
          details: { rule: "M1" },
        },
      );
    const set = dirs.get(parts[0]!) ?? new Set();
    set.add(parts[1]!);
    dirs.set(parts[0]!, set);
  }
  if (dirs.size === 0)
    throw new HandlerError("HND_ML_INVALID", `${view.type} v${view.version}: no model folders`, {
      details: { rule: "M1" },
    });
  const models: Model[] = [];
  for (const [dir, files] of [...dirs].sort()) {
    for (const f of MODEL_FILES)
      if (!files.has(f))
        throw new HandlerError("HND_ML_INVALID", `${dir}/${f}: missing`, {
          file: `${dir}/${f}`,
          details: { rule: "M1" },
        });
    const model = await Model.open({
      where: dir,
      manifest: view.read(`${dir}/manifest.json`),
      wasm: view.read(`${dir}/model.wasm`),
      weights: view.read(`${dir}/weights.bin`),
      golden: view.read(`${dir}/golden.json`),
    });
    if (model.manifest.name !== dir)
      throw new HandlerError(
        "HND_ML_INVALID",
        `${dir}/manifest.json: M1 name "${model.manifest.name}" must equal its folder "${dir}"`,
        {
          file: `${dir}/manifest.json`,
          details: { rule: "M1" },
        },
      );
    models.push(model);
  }
  return models;
}

/** The input kind models select on: the scanner's file kinds, plus "script" for a #! file. */
export function inputKindOf(bytes: Uint8Array): InputKind {
  const k = detectKind(bytes);
  if (k === "gzip" || k === "tar") return "other";
  if (k === "other" && bytes[0] === 0x23 && bytes[1] === 0x21) return "script";
  return k;
}

/** Deterministic sampling: the first 32 bits of the SHA-256 as a fraction of 2^32. */
export function sampled(sha256: string, rate: number): boolean {
  if (rate >= 1) return true;
  return Number.parseInt(sha256.slice(0, 8), 16) / 2 ** 32 < rate;
}

let built: { key: string; models: Model[] } | undefined;
const keyOf = (v: ContentView) => `${v.type}:${v.version}:${v.signingTime}`;

export const mlModelHandler = defineParsedHandler<LoadedModels>({
  manifest: parsedManifest(),

  async validate(view) {
    built = { key: keyOf(view), models: await openModels(view) };
  },

  async load(view, caps) {
    const models = built?.key === keyOf(view) ? built.models : await openModels(view);
    built = undefined;
    caps.log.info("ml models loaded", {
      version: view.version,
      models: models.map((m) => `${m.manifest.name}:${m.manifest.mode}`),
    });
    return {
      version: view.version,
      slots: models.map((model) => ({
        model,
        scores: 0,
        over: 0,
        faults: 0,
        lastFault: null,
        maxMs: 0,
        totalMs: 0,
      })),
      extractMs: 0,
      objects: 0,
    };
  },

  status(l) {
    return { version: l.version, objects: l.objects, extractMs: round(l.extractMs), models: rows(l) };
  },

  call(l, method, args) {
    switch (method) {
      case "score": {
        const r = ScoreArgs.safeParse(args ?? {});
        if (!r.success)
          throw new HandlerError("HND_ML_BAD_ARGS", `MLModel score: ${z.prettifyError(r.error)}`);
        return score(l, r.data.bytes, r.data.sha256);
      }
      case "models":
        return { version: l.version, models: rows(l) };
      default:
        throw new HandlerError("HND_UNKNOWN_METHOD", `MLModel has no method ${JSON.stringify(method)}`, {
          details: { methods: ["score", "models"] },
        });
    }
  },
});

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function rows(l: LoadedModels) {
  return l.slots.map((s) => ({
    name: s.model.manifest.name,
    mode: s.model.manifest.mode,
    inputKinds: s.model.manifest.inputKinds,
    threshold: s.model.manifest.threshold,
    sampleRate: s.model.manifest.sampleRate,
    featureVersion: s.model.manifest.featureVersion,
    state: s.faults >= MAX_FAULTS ? "faulted" : "active",
    scores: s.scores,
    over: s.over,
    faults: s.faults,
    lastFault: s.lastFault,
    maxMs: round(s.maxMs),
    meanMs: s.scores ? round(s.totalMs / s.scores) : 0,
  }));
}

export interface ScoreAnswer {
  kind: InputKind;
  sha256: string;
  version: number;
  results: ScoreRow[];
}

function score(l: LoadedModels, bytes: Uint8Array, sha?: string): ScoreAnswer {
  const kind = inputKindOf(bytes);
  const sha256 = sha ?? sha256Hex(bytes);
  const due = l.slots.filter(
    (s) =>
      s.faults < MAX_FAULTS &&
      s.model.manifest.inputKinds.includes(kind) &&
      (s.model.manifest.mode === "live" || sampled(sha256, s.model.manifest.sampleRate)),
  );
  const results: ScoreRow[] = [];
  if (due.length === 0) return { kind, sha256, version: l.version, results };
  l.objects++;
  const features = new Map<number, Float32Array>();
  for (const s of due) {
    const m = s.model.manifest;
    let f = features.get(m.featureVersion);
    if (!f) {
      const t = performance.now();
      f = FEATURE_VERSIONS[m.featureVersion]!.extract(bytes);
      l.extractMs += performance.now() - t;
      features.set(m.featureVersion, f);
    }
    const r = s.model.score(f);
    const row: ScoreRow = { model: m.name, mode: m.mode, threshold: m.threshold };
    if ("fault" in r) {
      s.faults++;
      s.lastFault = `${r.fault}: ${r.message}`;
      row.fault = r.fault;
      if (s.faults >= MAX_FAULTS) row.faulted = true;
    } else {
      s.scores++;
      s.totalMs += r.ms;
      s.maxMs = Math.max(s.maxMs, r.ms);
      if (r.score >= m.threshold) s.over++;
      row.score = r.score;
    }
    results.push(row);
  }
  return { kind, sha256, version: l.version, results };
}

export default mlModelHandler;
