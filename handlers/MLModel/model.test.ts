/** Rules M1–M11, one attack each: the agent's checks refuse the model and name the file and the rule. */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { HandlerError } from "../../core/errors.ts";
import { extractV1, FEATURES_V1 } from "./features.ts";
import { Model, type ModelFiles } from "./model.ts";
import { syntheticCorpus } from "./synthetic.ts";
import { meter } from "./wasm-module.ts";

setDefaultTimeout(20_000);

const EXAMPLE = join(import.meta.dir, "../../examples/MLModel/outpost-lr");
const read = (f: string) => new Uint8Array(readFileSync(join(EXAMPLE, f)));
const fixture = (f: string) => new Uint8Array(readFileSync(join(import.meta.dir, "testdata", f)));
const good = (): ModelFiles => ({
  where: "outpost-lr",
  manifest: read("manifest.json"),
  wasm: read("model.wasm"),
  weights: read("weights.bin"),
  golden: read("golden.json"),
});
const manifest = () => JSON.parse(new TextDecoder().decode(read("manifest.json")));
const enc = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));

async function refusal(files: ModelFiles): Promise<HandlerError> {
  try {
    await Model.open(files);
  } catch (e) {
    expect(e).toBeInstanceOf(HandlerError);
    expect((e as HandlerError).code).toBe("HND_ML_INVALID");
    return e as HandlerError;
  }
  throw new Error("the model was accepted");
}

describe("the example model", () => {
  test("passes every rule and scores synthetic malware it never saw above its threshold", async () => {
    const m = await Model.open(good());
    expect(m.featuresLen).toBe(FEATURES_V1.length);
    // A seed the training script did not use: a real generalisation check on the synthetic families.
    const corpus = syntheticCorpus(30, 4242);
    const scores = corpus.map((s) => m.score(extractV1(s.bytes)));
    for (const r of scores) expect("score" in r && r.score >= 0.5).toBe(true);
  });

  test("scores this repository's own text as benign", async () => {
    const m = await Model.open(good());
    const r = m.score(extractV1(new Uint8Array(readFileSync(join(import.meta.dir, "../../README.md")))));
    expect("score" in r && r.score < 0.5).toBe(true);
  });
});

describe("bad input is refused before activation", () => {
  test("M1: a manifest with an unknown mode", async () => {
    const e = await refusal({ ...good(), manifest: enc({ ...manifest(), mode: "shadow" }) });
    expect(e.message).toContain("outpost-lr/manifest.json: M1");
  });

  test("M2: a truncated weights file", async () => {
    const w = read("weights.bin");
    const e = await refusal({ ...good(), weights: w.subarray(0, w.length - 7) });
    expect(e.message).toContain("outpost-lr/weights.bin: M2");
    expect(e.message).toContain("truncated");
  });

  test("M8: truncated weights the manifest agrees with are refused by the model's own init", async () => {
    const w = read("weights.bin").subarray(0, 100);
    const digest = new Bun.CryptoHasher("sha256").update(w).digest("hex");
    const e = await refusal({
      ...good(),
      weights: w,
      manifest: enc({ ...manifest(), weights: { bytes: w.length, sha256: digest } }),
    });
    expect(e.message).toContain("M8 the model refused its weights (init returned 1)");
  });

  test("M3: bytes that are not WebAssembly", async () => {
    const e = await refusal({ ...good(), wasm: new TextEncoder().encode("MZ not wasm") });
    expect(e.message).toContain("model.wasm: M3");
  });

  test("M4: a module importing a function outside the math set", async () => {
    const e = await refusal({ ...good(), wasm: fixture("import.wasm") });
    expect(e.message).toContain("M4 imports function env.open_socket");
  });

  test("M5: an extra export (a module that brings its own fuel global)", async () => {
    const e = await refusal({ ...good(), wasm: meter(read("model.wasm")) });
    expect(e.message).toContain("M5 exports");
  });

  test("M6: a memory with no maximum, and one above the manifest's cap", async () => {
    expect((await refusal({ ...good(), wasm: fixture("grow-unbounded.wasm") })).message).toContain(
      "M6 memory has no maximum",
    );
    const e = await refusal({ ...good(), manifest: enc({ ...manifest(), limits: { memoryPages: 8 } }) });
    expect(e.message).toContain("M6 memory maximum 16 pages exceeds limits.memoryPages 8");
  });

  test("M9: golden vectors the model does not reproduce", async () => {
    const g = JSON.parse(new TextDecoder().decode(read("golden.json")));
    g.vectors[3].score = Math.min(1, g.vectors[3].score + 0.01);
    const e = await refusal({ ...good(), golden: enc(g) });
    expect(e.message).toContain("outpost-lr/golden.json: M9 vector 3");
  });

  test("M10: an infinite loop is stopped by the fuel bound, within the budget", async () => {
    const t = performance.now();
    const e = await refusal({ ...good(), wasm: fixture("loop.wasm") });
    expect(e.message).toContain("M10");
    expect(e.message).toContain("exceeded 100000 loop iterations");
    expect(performance.now() - t).toBeLessThan(5_000);
  });

  test("M10: unbounded memory growth stays under the page cap and is stopped by fuel", async () => {
    const e = await refusal({ ...good(), wasm: fixture("grow.wasm") });
    expect(e.message).toContain("M10");
  });

  test("M10: a model slower than its per-score time budget", async () => {
    const limits = { memoryPages: 16, fuel: 100_000, scoreBudgetMs: 1e-7 };
    const e = await refusal({ ...good(), manifest: enc({ ...manifest(), limits }) });
    expect(e.message).toMatch(/M10 scores take [0-9.]+ ms \(median\); budget 1e-7 ms/);
  });

  test("M11: a feature version this agent does not extract", async () => {
    const e = await refusal({ ...good(), manifest: enc({ ...manifest(), featureVersion: 9 }) });
    expect(e.message).toContain("M11 featureVersion 9");
  });
});

test("at run time a looping model faults instead of hanging, and the next call still runs", async () => {
  const m = await Model.open({ ...good(), wasm: fixture("loop.wasm") }, { skipGolden: true });
  const f = new Float32Array(FEATURES_V1.length);
  for (let i = 0; i < 3; i++) expect(m.score(f)).toMatchObject({ fault: "fuel" });
});
