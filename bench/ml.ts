#!/usr/bin/env bun
/**
 * ML scoring cost on the scan corpus: feature extraction (v1) and scoring
 * with the example model (examples/MLModel/outpost-lr, WASM, fuel-metered),
 * in objects/s and MB/s, and their share of the scan time — measured against
 * the DatasetA engine scanning the same objects with 10k hash + 10k body
 * signatures (bench/scan.ts's recipe), both in-process so host start-up and
 * IPC are not counted for either.
 *
 *   nice bun bench/ml.ts [--corpus-mb 64] [--runs 3] [--json]
 *
 * Corpus: regular files from /usr/bin up to --corpus-mb, plus 300 synthetic
 * droppers (handlers/MLModel/synthetic.ts). Also reports the model's
 * accuracy on that corpus (droppers ≥ threshold, /usr/bin files below it).
 */
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { datasetFromSources } from "../handlers/DatasetA/dataset.ts";
import { generateSignatureSet } from "../handlers/DatasetA/testutil.ts";
import { extractV1 } from "../handlers/MLModel/features.ts";
import { inputKindOf } from "../handlers/MLModel/index.ts";
import { Model } from "../handlers/MLModel/model.ts";
import { syntheticCorpus } from "../handlers/MLModel/synthetic.ts";

const { values } = parseArgs({
  options: {
    "corpus-mb": { type: "string", default: "64" },
    runs: { type: "string", default: "3" },
    json: { type: "boolean" },
  },
});
const RUNS = Number(values.runs);
const EXAMPLE = join(import.meta.dir, "../examples/MLModel/outpost-lr");
const read = (f: string) => new Uint8Array(readFileSync(join(EXAMPLE, f)));

const objects: { bytes: Uint8Array; malicious: boolean }[] = [];
let bytes = 0;
for (const name of readdirSync("/usr/bin").sort()) {
  if (bytes >= Number(values["corpus-mb"]) * 1024 * 1024) break;
  const p = join("/usr/bin", name);
  const st = lstatSync(p);
  if (!st.isFile() || st.size === 0 || st.size > 8 * 1024 * 1024) continue;
  objects.push({ bytes: new Uint8Array(readFileSync(p)), malicious: false });
  bytes += st.size;
}
for (const s of syntheticCorpus(300, 31337)) {
  objects.push({ bytes: s.bytes, malicious: true });
  bytes += s.bytes.length;
}
const MB = bytes / 1e6;

const model = await Model.open({
  where: "outpost-lr",
  manifest: read("manifest.json"),
  wasm: read("model.wasm"),
  weights: read("weights.bin"),
  golden: read("golden.json"),
});
const kinds = new Set(model.manifest.inputKinds as string[]);

const set = generateSignatureSet(20241, 10_000, 10_000, { hashBacked: 10, prefix: "Bench" });
const dataset = datasetFromSources([
  { path: "bench.hsb", text: set.hsb },
  { path: "bench.ndb", text: set.ndb },
]);
const spill = mkdtempSync(join(tmpdir(), "outpost-bench-ml-"));
process.on("exit", () => rmSync(spill, { recursive: true, force: true }));

function best(fn: () => Promise<void> | void): Promise<number> {
  return (async () => {
    let min = Number.POSITIVE_INFINITY;
    for (let r = 0; r < RUNS; r++) {
      const t = performance.now();
      await fn();
      min = Math.min(min, performance.now() - t);
    }
    return min;
  })();
}

// Warm-up (JIT) for all three paths.
for (const o of objects.slice(0, 20)) {
  model.score(extractV1(o.bytes));
  await dataset.scan(o.bytes, { spillDir: spill });
}

const features: Float32Array[] = [];
const extractMs = await best(() => {
  features.length = 0;
  for (const o of objects) features.push(extractV1(o.bytes));
});
let eligible = 0;
const scoreMs = await best(() => {
  eligible = 0;
  for (const [i, o] of objects.entries()) {
    if (!kinds.has(inputKindOf(o.bytes))) continue;
    eligible++;
    model.score(features[i]!);
  }
});
const scanMs = await best(async () => {
  for (const o of objects) await dataset.scan(o.bytes, { spillDir: spill });
});

// Accuracy on this corpus (eligible objects only: the model is not asked about the others).
let tp = 0;
let fn = 0;
let fp = 0;
let tn = 0;
for (const [i, o] of objects.entries()) {
  if (!kinds.has(inputKindOf(o.bytes))) continue;
  const r = model.score(features[i]!);
  const hit = "score" in r && r.score >= model.manifest.threshold;
  if (o.malicious) hit ? tp++ : fn++;
  else hit ? fp++ : tn++;
}

const mlMs = extractMs + scoreMs;
const result = {
  corpus: { objects: objects.length, megabytes: Math.round(MB * 10) / 10, eligible },
  extraction: {
    ms: Math.round(extractMs),
    MBps: Math.round(MB / (extractMs / 1000)),
    objectsPerS: Math.round(objects.length / (extractMs / 1000)),
  },
  scoring: {
    ms: Math.round(scoreMs * 10) / 10,
    scoresPerS: Math.round(eligible / (scoreMs / 1000)),
    usPerScore: Math.round((scoreMs / eligible) * 1000 * 10) / 10,
  },
  extractionPlusScoring: {
    MBps: Math.round(MB / (mlMs / 1000)),
    objectsPerS: Math.round(objects.length / (mlMs / 1000)),
  },
  datasetAScan: { ms: Math.round(scanMs), MBps: Math.round(MB / (scanMs / 1000)) },
  mlShareOfScanTime: Math.round((mlMs / (mlMs + scanMs)) * 1000) / 1000,
  accuracy: { truePositives: tp, falseNegatives: fn, falsePositives: fp, trueNegatives: tn },
};
if (values.json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(
    `corpus: ${result.corpus.objects} objects, ${result.corpus.megabytes} MB (${eligible} elf/pe/script)`,
  );
  console.log(
    `feature extraction: ${result.extraction.MBps} MB/s, ${result.extraction.objectsPerS} objects/s`,
  );
  console.log(
    `scoring (WASM, metered): ${result.scoring.scoresPerS} scores/s (${result.scoring.usPerScore} µs each)`,
  );
  console.log(`extraction + scoring: ${result.extractionPlusScoring.MBps} MB/s`);
  console.log(`DatasetA scan (10k hash + 10k body sigs): ${result.datasetAScan.MBps} MB/s`);
  console.log(`ML share of scan time: ${(result.mlShareOfScanTime * 100).toFixed(1)} %`);
  console.log(`accuracy: TP ${tp} FN ${fn} FP ${fp} TN ${tn}`);
}
