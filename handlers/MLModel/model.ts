/**
 * One ML model: its manifest, its checks and its metered runtime. The
 * checks are python-tuf style — pure, one rule id each, run in the agent
 * before the model may become active and by `contentctl pack` / `ml build`
 * (the same code) before anything is signed:
 *
 *   M1  manifest.json matches the schema (name, mode, inputKinds, threshold, sampleRate, featureVersion, limits)
 *   M2  weights.bin has exactly the size and SHA-256 the manifest declares (a truncated file is refused)
 *   M3  model.wasm compiles (WebAssembly.compile) and uses only MVP + bulk-memory instructions
 *   M4  imports: functions from module "math" named in ALLOWED_IMPORTS, nothing else
 *   M5  exports: exactly memory, alloc, features_len, init, score, with those kinds
 *   M6  exactly one memory, with a declared maximum ≤ limits.memoryPages ≤ MAX_MEMORY_PAGES
 *   M7  features_len() equals the length of the declared feature version
 *   M8  init(weights) returns 0 (the model accepts its weights)
 *   M9  every golden vector scores within `tolerance` of its expected score
 *   M10 every golden score finishes within limits.fuel loop iterations and limits.scoreBudgetMs
 *   M11 featureVersion is one this agent extracts
 *
 * ABI (docs/ml.md): alloc(bytes) → ptr; features_len() → n; init(ptr, len) → 0 | error;
 * score(ptr, n) → f32 in [0, 1], features as n little-endian f32 at ptr.
 */

import { sha256Hex } from "../../core/crypto/digest.ts";
import { HandlerError } from "../../core/errors.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { FEATURE_VERSIONS } from "./features.ts";
import { FUEL_EXPORT, inspect, meter, WasmFormatError } from "./wasm-module.ts";

export const MAX_MEMORY_PAGES = 256; // 16 MiB
export const MAX_FUEL = 50_000_000;
/** Pure math the host provides; nothing that reaches the outside world. */
export const ALLOWED_IMPORTS: Record<string, (...a: number[]) => number> = {
  exp: Math.exp,
  log: Math.log,
  pow: Math.pow,
  tanh: Math.tanh,
  sqrt: Math.sqrt,
};
const EXPORTS: Record<string, string> = {
  memory: "memory",
  alloc: "function",
  features_len: "function",
  init: "function",
  score: "function",
};
export const MODEL_FILES = ["manifest.json", "model.wasm", "weights.bin", "golden.json"] as const;

export const InputKind = lazySchema(() => z.enum(["elf", "pe", "macho", "script", "pdf", "zip", "other"]));
export type InputKind = z.infer<typeof InputKind>;

export const ModelManifestSchema = lazySchema(() =>
  z.strictObject({
    name: z.string().check(z.regex(/^[a-z][a-z0-9-]{0,47}$/)),
    mode: z.enum(["telemetry", "live"]),
    inputKinds: z.array(InputKind).check(z.minLength(1)),
    /** Live: a score ≥ threshold is a detection. Telemetry: only splits the reported counts. */
    threshold: z.number().check(z.gte(0), z.lte(1)),
    /** Share of eligible objects scored (telemetry); live models score every eligible object. */
    sampleRate: z.number().check(z.gte(0), z.lte(1)),
    featureVersion: z.int().check(z.positive()),
    weights: z.strictObject({
      bytes: z.int().check(z.gte(0)),
      sha256: z.string().check(z.regex(/^[0-9a-f]{64}$/)),
    }),
    limits: z.prefault(
      z.strictObject({
        memoryPages: z._default(z.int().check(z.gte(1), z.lte(MAX_MEMORY_PAGES)), 64),
        fuel: z._default(z.int().check(z.gte(1000), z.lte(MAX_FUEL)), 1_000_000),
        scoreBudgetMs: z._default(z.number().check(z.positive(), z.lte(1000)), 20),
      }),
      {},
    ),
    description: z.optional(z.string().check(z.maxLength(500))),
  }),
);
export type ModelManifest = z.infer<typeof ModelManifestSchema>;

export const GoldenSchema = lazySchema(() =>
  z.strictObject({
    tolerance: z._default(z.number().check(z.gte(0), z.lte(0.1)), 1e-5),
    vectors: z
      .array(z.strictObject({ features: z.array(z.number()), score: z.number() }))
      .check(z.minLength(1), z.maxLength(10_000)),
  }),
);

export interface ModelFiles {
  /** Reported in errors: where the model came from (package path or directory). */
  where: string;
  manifest: Uint8Array;
  wasm: Uint8Array;
  weights: Uint8Array;
  golden: Uint8Array;
}

function refuse(rule: string, file: string, message: string): never {
  throw new HandlerError("HND_ML_INVALID", `${file}: ${rule} ${message}`, { file, details: { rule } });
}

function json(bytes: Uint8Array, file: string): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    return refuse("M1", file, `not valid JSON: ${(e as Error).message}`);
  }
}

export function parseManifest(bytes: Uint8Array, file: string): ModelManifest {
  const r = ModelManifestSchema.safeParse(json(bytes, file));
  if (!r.success) refuse("M1", file, z.prettifyError(r.error).replace(/\n/g, "; "));
  return r.data;
}

export type ScoreResult = { score: number; ms: number } | { fault: string; message: string };

/** A compiled, checked, metered model instance. */
export class Model {
  private constructor(
    readonly manifest: ModelManifest,
    private readonly x: Record<string, unknown> & {
      memory: WebAssembly.Memory;
      alloc(n: number): number;
      score(p: number, n: number): number;
    },
    private readonly ptr: number,
    readonly featuresLen: number,
  ) {}

  /** Runs M1–M11 and returns the model ready to score; throws HND_ML_INVALID naming file and rule. */
  static async open(files: ModelFiles, opts: { skipGolden?: boolean } = {}): Promise<Model> {
    const at = (f: string) => `${files.where}/${f}`;
    const m = parseManifest(files.manifest, at("manifest.json"));
    const fv = FEATURE_VERSIONS[m.featureVersion];
    if (!fv)
      refuse(
        "M11",
        at("manifest.json"),
        `featureVersion ${m.featureVersion} is not one this agent extracts (${Object.keys(FEATURE_VERSIONS).join(", ")})`,
      );
    if (files.weights.length !== m.weights.bytes)
      refuse(
        "M2",
        at("weights.bin"),
        `is ${files.weights.length} bytes; the manifest says ${m.weights.bytes} (truncated or wrong file)`,
      );
    const sha = sha256Hex(files.weights);
    if (sha !== m.weights.sha256)
      refuse("M2", at("weights.bin"), `SHA-256 ${sha} differs from the manifest's ${m.weights.sha256}`);

    let module: WebAssembly.Module;
    let metered: Uint8Array;
    try {
      module = await WebAssembly.compile(files.wasm);
      checkShape(files.wasm, module, m, at("model.wasm"));
      metered = meter(files.wasm);
    } catch (e) {
      if (e instanceof HandlerError) throw e;
      return refuse("M3", at("model.wasm"), `does not compile or parse: ${(e as Error).message}`);
    }
    const imports = {
      math: Object.fromEntries(
        WebAssembly.Module.imports(module).map((i) => [i.name, ALLOWED_IMPORTS[i.name]!]),
      ),
    };
    let inst: WebAssembly.Instance;
    try {
      inst = new WebAssembly.Instance(new WebAssembly.Module(metered), imports);
    } catch (e) {
      return refuse("M3", at("model.wasm"), `does not instantiate: ${(e as Error).message}`);
    }
    const x = inst.exports as unknown as Record<string, unknown> & {
      memory: WebAssembly.Memory;
      alloc(n: number): number;
      features_len(): number;
      init(p: number, n: number): number;
      score(p: number, n: number): number;
    };
    const fuel = x[FUEL_EXPORT] as WebAssembly.Global;
    const guarded = <T>(rule: string, what: string, fn: () => T): T => {
      fuel.value = m.limits.fuel;
      try {
        return fn();
      } catch (e) {
        return refuse(
          rule,
          at("model.wasm"),
          `${what} trapped: ${(e as Error).message}${fuel.value === 0 ? " (fuel exhausted)" : ""}`,
        );
      }
    };
    const n = guarded("M7", "features_len()", () => x.features_len());
    if (n !== fv.length)
      refuse(
        "M7",
        at("model.wasm"),
        `features_len() is ${n}; feature version ${m.featureVersion} has ${fv.length}`,
      );
    const wp = guarded("M8", "alloc(weights)", () => x.alloc(files.weights.length));
    new Uint8Array(x.memory.buffer).set(files.weights, wp);
    const rc = guarded("M8", "init(weights)", () => x.init(wp, files.weights.length));
    if (rc !== 0) refuse("M8", at("weights.bin"), `the model refused its weights (init returned ${rc})`);
    const ptr = guarded("M8", "alloc(features)", () => x.alloc(n * 4));
    const model = new Model(m, x, ptr, n);
    // Only `ml build` skips M9, to compute the golden scores it then checks with the full rules.
    if (opts.skipGolden) return model;

    const gr = GoldenSchema.safeParse(json(files.golden, at("golden.json")));
    if (!gr.success) refuse("M9", at("golden.json"), z.prettifyError(gr.error).replace(/\n/g, "; "));
    // One warm-up call first: the first call into a fresh instance pays for compilation tiers.
    model.score(new Float32Array(n));
    const times: number[] = [];
    for (const [i, v] of gr.data.vectors.entries()) {
      if (v.features.length !== n)
        refuse("M9", at("golden.json"), `vector ${i} has ${v.features.length} features, not ${n}`);
      const r = model.score(Float32Array.from(v.features));
      if ("fault" in r) refuse("M10", at("model.wasm"), `golden vector ${i}: ${r.message}`);
      times.push(r.ms);
      if (!(Math.abs(r.score - v.score) <= gr.data.tolerance))
        refuse(
          "M9",
          at("golden.json"),
          `vector ${i}: the model scores ${r.score}, golden ${v.score} (tolerance ${gr.data.tolerance})`,
        );
    }
    // The median, not the maximum: fuel already bounds the worst case exactly, and one slow
    // sample on a loaded machine is the machine's fault, not the model's.
    const median = times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
    if (median > m.limits.scoreBudgetMs)
      refuse(
        "M10",
        at("model.wasm"),
        `scores take ${median.toFixed(3)} ms (median); budget ${m.limits.scoreBudgetMs} ms`,
      );
    return model;
  }

  /** One score under the fuel bound; a trap or a score outside [0, 1] is a fault, never a verdict. */
  score(features: Float32Array): ScoreResult {
    const fuel = this.x[FUEL_EXPORT] as WebAssembly.Global;
    fuel.value = this.manifest.limits.fuel;
    const t = performance.now();
    try {
      new Float32Array(this.x.memory.buffer, this.ptr, this.featuresLen).set(features);
      const s = this.x.score(this.ptr, this.featuresLen);
      const ms = performance.now() - t;
      if (!(s >= 0 && s <= 1)) return { fault: "bad-score", message: `score ${s} is not in [0, 1]` };
      return { score: s, ms };
    } catch (e) {
      if (fuel.value === 0)
        return { fault: "fuel", message: `exceeded ${this.manifest.limits.fuel} loop iterations` };
      return { fault: "trap", message: (e as Error).message };
    }
  }
}

function checkShape(bytes: Uint8Array, module: WebAssembly.Module, m: ModelManifest, file: string): void {
  let facts: ReturnType<typeof inspect>;
  try {
    facts = inspect(bytes);
  } catch (e) {
    if (e instanceof WasmFormatError) refuse("M3", file, e.message);
    throw e;
  }
  for (const i of WebAssembly.Module.imports(module)) {
    if (i.module !== "math" || i.kind !== "function" || !Object.hasOwn(ALLOWED_IMPORTS, i.name))
      refuse(
        "M4",
        file,
        `imports ${i.kind} ${i.module}.${i.name}; only functions math.{${Object.keys(ALLOWED_IMPORTS).join(",")}} are allowed`,
      );
  }
  const exports = WebAssembly.Module.exports(module);
  const names = exports.map((e) => e.name).sort();
  const want = Object.keys(EXPORTS).sort();
  if (names.join() !== want.join())
    refuse("M5", file, `exports [${names.join(", ")}]; the ABI is exactly [${want.join(", ")}]`);
  for (const e of exports)
    if (EXPORTS[e.name] !== e.kind)
      refuse("M5", file, `export ${e.name} is a ${e.kind}, not a ${EXPORTS[e.name]}`);
  if (facts.memories.length !== 1)
    refuse("M6", file, `declares ${facts.memories.length} memories; exactly one is allowed`);
  const mem = facts.memories[0]!;
  if (mem.max === null)
    refuse(
      "M6",
      file,
      `memory has no maximum; declare one ≤ ${m.limits.memoryPages} pages (asc --maximumMemory)`,
    );
  if (mem.max > m.limits.memoryPages)
    refuse("M6", file, `memory maximum ${mem.max} pages exceeds limits.memoryPages ${m.limits.memoryPages}`);
}
