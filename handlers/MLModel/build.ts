/**
 * The vendor side of a model: compile AssemblyScript (or take a .wasm built
 * elsewhere), bind it to its weights and compute its golden vectors with the
 * agent's own runtime, then check the result with the same rules M1–M11 the
 * agent applies before activation (model.ts). `contentctl ml build` and the
 * training script (train.ts) both use this.
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { HandlerError } from "../../core/errors.ts";
import { atomicWriteFile } from "../../core/fsutil.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { Model, type ModelManifest, ModelManifestSchema } from "./model.ts";

/** asc flags every model gets: no runtime imports (abort dropped), a bounded memory. */
export function ascArgs(source: string, out: string, maxPages: number | null): string[] {
  const base = [source, "-o", out, "-O3", "--runtime", "stub", "--use", "abort="];
  // null only for the test fixture that must be refused for an unbounded memory (M6).
  return maxPages === null ? base : [...base, "--maximumMemory", String(maxPages)];
}

/**
 * Compiles one AssemblyScript file (`.as` or `.ts`) with the `assemblyscript`
 * package's compiler (imported only here, so the agent never loads it).
 */
export async function compileAssemblyScript(source: string, maxPages: number | null): Promise<Uint8Array> {
  const dir = mkdtempSync(join(tmpdir(), "outpost-asc-"));
  try {
    // asc only reads .ts entry files; the model source keeps .as so the repo's TypeScript check skips it.
    const entry = join(dir, `${basename(source).replace(/\.(as|ts)$/, "")}.ts`);
    writeFileSync(entry, readFileSync(source));
    const out = join(dir, "model.wasm");
    // A computed specifier keeps the compiler out of the compiled executables: building from
    // source needs the npm package (in the repo's node_modules); a prebuilt .wasm needs nothing.
    const spec = ["assemblyscript", "asc"].join("/");
    type Asc = {
      main(argv: string[], opts: object): Promise<{ error: Error | null; stderr: { toString(): string } }>;
    };
    let asc: Asc;
    try {
      asc = (await import(spec)) as unknown as Asc;
    } catch (e) {
      throw new HandlerError(
        "HND_ML_BUILD",
        `${source}: compiling AssemblyScript needs the 'assemblyscript' npm package, which this contentctl does not include (${(e as Error).message}); run it from the source tree after npm install, or pass a prebuilt .wasm as --source`,
        { file: source },
      );
    }
    const r = await asc.main(ascArgs(entry, out, maxPages), {});
    if (r.error)
      throw new HandlerError(
        "HND_ML_BUILD",
        `${source}: AssemblyScript compile failed: ${r.error.message}\n${r.stderr.toString()}`,
        {
          file: source,
        },
      );
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What a build is given: the manifest without the weights digest (computed here). */
export const BuildManifestSchema = lazySchema(() => z.omit(ModelManifestSchema, { weights: true }));

export interface BuildInput {
  wasm: Uint8Array;
  weights: Uint8Array;
  manifest: z.input<typeof BuildManifestSchema>;
  /** Feature vectors whose scores become the golden vectors. */
  goldenInputs: number[][];
  /** Payload directory; the model is written to OUT/<name>/. */
  out: string;
}

export interface BuildSummary {
  name: string;
  mode: string;
  dir: string;
  wasmBytes: number;
  weightsBytes: number;
  goldenVectors: number;
  meanScoreMs: number;
}

export async function buildModel(input: BuildInput): Promise<BuildSummary> {
  // An existing manifest.json may be reused: its weights digest is recomputed, never trusted.
  const { weights: _old, ...given } = input.manifest as Record<string, unknown>;
  const parsed = BuildManifestSchema.safeParse(given);
  if (!parsed.success)
    throw new HandlerError(
      "HND_ML_INVALID",
      `manifest: M1 ${z.prettifyError(parsed.error).replace(/\n/g, "; ")}`,
      {
        details: { rule: "M1" },
      },
    );
  const manifest: ModelManifest = {
    ...parsed.data,
    weights: {
      bytes: input.weights.length,
      sha256: createHash("sha256").update(input.weights).digest("hex"),
    },
  };
  const manifestBytes = new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`);
  const files = { where: manifest.name, manifest: manifestBytes, wasm: input.wasm, weights: input.weights };
  // Scores with the agent's runtime; golden.json starts as this model's own answers.
  const probe = await Model.open(
    { ...files, golden: golden(input.goldenInputs, null) },
    { skipGolden: true },
  );
  const scores = input.goldenInputs.map((v, i) => {
    const r = probe.score(Float32Array.from(v));
    if ("fault" in r)
      throw new HandlerError("HND_ML_INVALID", `golden input ${i}: M10 ${r.message}`, {
        details: { rule: "M10" },
      });
    return r;
  });
  const goldenBytes = golden(
    input.goldenInputs,
    scores.map((s) => s.score),
  );
  // The full check, exactly as the agent will run it.
  await Model.open({ ...files, golden: goldenBytes });
  const dir = join(input.out, manifest.name);
  mkdirSync(dir, { recursive: true });
  atomicWriteFile(join(dir, "model.wasm"), input.wasm);
  atomicWriteFile(join(dir, "weights.bin"), input.weights);
  atomicWriteFile(join(dir, "golden.json"), goldenBytes);
  atomicWriteFile(join(dir, "manifest.json"), manifestBytes);
  return {
    name: manifest.name,
    mode: manifest.mode,
    dir,
    wasmBytes: input.wasm.length,
    weightsBytes: input.weights.length,
    goldenVectors: input.goldenInputs.length,
    meanScoreMs: Math.round((scores.reduce((n, s) => n + s.ms, 0) / Math.max(1, scores.length)) * 1e4) / 1e4,
  };
}

function golden(inputs: number[][], scores: number[] | null): Uint8Array {
  const vectors = inputs.map((features, i) => ({
    features: features.map((x) => Math.fround(x)),
    score: scores?.[i] ?? 0,
  }));
  return new TextEncoder().encode(`${JSON.stringify({ tolerance: 1e-5, vectors })}\n`);
}
