/**
 * Trains the example model (examples/MLModel/outpost-lr) on this machine:
 * benign = files it already has (ELF programs and libraries, shell and
 * Python scripts, PE files shipped by Python tooling, text), malicious =
 * synthetic.ts's families. Logistic regression on feature version 1,
 * standardised, class-balanced, L2-regularised, full-batch gradient descent;
 * 70/30 split by SHA-256 so the held-out set is stable. No downloads.
 *
 *   bun handlers/MLModel/train.ts [--out examples/MLModel] [--mode telemetry|live]
 *
 * Prints the held-out accuracy per class as JSON (docs/ml.md quotes it).
 */
import { createHash } from "node:crypto";
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildModel, compileAssemblyScript } from "./build.ts";
import { extractV1, FEATURES_V1 } from "./features.ts";
import { syntheticCorpus } from "./synthetic.ts";

const MAX_FILE = 8 * 1024 * 1024;

interface Sample {
  name: string;
  label: 0 | 1;
  cls: string;
  x: Float32Array;
  holdout: boolean;
}

/** Bounded walk: at most `limit` regular files under `root` matching `want`. */
export function collect(
  root: string,
  want: (path: string, head: Uint8Array) => boolean,
  limit: number,
): string[] {
  const out: string[] = [];
  const stack = [root];
  let visited = 0;
  while (stack.length && out.length < limit && visited < 50_000) {
    const dir = stack.pop()!;
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      if (out.length >= limit) break;
      const p = join(dir, n);
      visited++;
      let st: ReturnType<typeof statSync>;
      try {
        st = statSync(p, { throwIfNoEntry: false }) as ReturnType<typeof statSync>;
      } catch {
        continue;
      }
      if (!st) continue;
      if (st.isDirectory()) stack.push(p);
      else if (st.isFile() && st.size > 0 && st.size <= MAX_FILE) {
        const head = new Uint8Array(4);
        try {
          const fd = openSync(p, "r");
          readSync(fd, head, 0, 4, 0);
          closeSync(fd);
        } catch {
          continue;
        }
        if (want(p, head)) out.push(p);
      }
    }
  }
  return out;
}

const isElf = (_: string, h: Uint8Array) => h[0] === 0x7f && h[1] === 0x45 && h[2] === 0x4c && h[3] === 0x46;
const isScript = (_: string, h: Uint8Array) => h[0] === 0x23 && h[1] === 0x21;
const isPe = (p: string, h: Uint8Array) => /\.(exe|dll)$/i.test(p) && h[0] === 0x4d && h[1] === 0x5a;
const isText = (p: string) => /\.(txt|md|conf|json|py|html|css|js)$/.test(p);

export function benignFiles(): { path: string; cls: string }[] {
  const take = (cls: string, paths: string[]) => paths.map((path) => ({ path, cls }));
  return [
    ...take("elf", [...collect("/usr/bin", isElf, 250), ...collect("/usr/lib/x86_64-linux-gnu", isElf, 150)]),
    ...take("script", [...collect("/usr/bin", isScript, 150), ...collect("/usr/share", isScript, 150)]),
    ...take("pe", [...collect("/root/.pyenv", isPe, 40), ...collect("/usr/lib", isPe, 40)]),
    ...take("other", collect("/usr/share/doc", isText, 150)),
  ];
}

function holdoutOf(bytes: Uint8Array): boolean {
  return createHash("sha256").update(bytes).digest()[0]! % 10 >= 7;
}

export function dataset(): Sample[] {
  const samples: Sample[] = [];
  const seen = new Set<string>();
  for (const { path, cls } of benignFiles()) {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(path));
    } catch {
      continue;
    }
    const h = createHash("sha256").update(bytes).digest("hex");
    if (seen.has(h)) continue;
    seen.add(h);
    samples.push({ name: path, label: 0, cls, x: extractV1(bytes), holdout: holdoutOf(bytes) });
  }
  for (const [i, s] of syntheticCorpus(600, 7).entries())
    samples.push({
      name: `synthetic:${s.family}:${i}`,
      label: 1,
      cls: s.family,
      x: extractV1(s.bytes),
      holdout: holdoutOf(s.bytes),
    });
  return samples;
}

export interface Trained {
  mean: Float32Array;
  scale: Float32Array;
  w: Float32Array;
  bias: number;
}

export function train(samples: Sample[], iterations = 1500, rate = 0.5, l2 = 1e-3): Trained {
  const n = FEATURES_V1.length;
  const mean = new Float32Array(n);
  const scale = new Float32Array(n);
  for (const s of samples) for (let j = 0; j < n; j++) mean[j]! += s.x[j]! / samples.length;
  for (const s of samples)
    for (let j = 0; j < n; j++) scale[j]! += (s.x[j]! - mean[j]!) ** 2 / samples.length;
  for (let j = 0; j < n; j++) scale[j] = Math.sqrt(scale[j]!) || 1;
  const z = samples.map((s) => Array.from(s.x, (v, j) => (v - mean[j]!) / scale[j]!));
  const pos = samples.filter((s) => s.label === 1).length;
  const weightOf = (s: Sample) =>
    s.label === 1 ? samples.length / (2 * pos) : samples.length / (2 * (samples.length - pos));
  const w = new Float64Array(n);
  let bias = 0;
  for (let it = 0; it < iterations; it++) {
    const g = new Float64Array(n);
    let gb = 0;
    for (const [i, s] of samples.entries()) {
      let t = bias;
      for (let j = 0; j < n; j++) t += w[j]! * z[i]![j]!;
      const err = (1 / (1 + Math.exp(-t)) - s.label) * weightOf(s);
      for (let j = 0; j < n; j++) g[j]! += err * z[i]![j]!;
      gb += err;
    }
    for (let j = 0; j < n; j++) w[j]! -= rate * (g[j]! / samples.length + l2 * w[j]!);
    bias -= (rate * gb) / samples.length;
  }
  return { mean, scale, w: Float32Array.from(w), bias };
}

export function weightsFile(t: Trained): Uint8Array {
  const n = t.w.length;
  const b = new Uint8Array(12 + 4 * (3 * n + 1));
  const v = new DataView(b.buffer);
  b.set(new TextEncoder().encode("OPML"));
  v.setUint32(4, 1, true);
  v.setUint32(8, n, true);
  for (let j = 0; j < n; j++) {
    v.setFloat32(12 + 4 * j, t.mean[j]!, true);
    v.setFloat32(12 + 4 * (n + j), t.scale[j]!, true);
    v.setFloat32(12 + 4 * (2 * n + j), t.w[j]!, true);
  }
  v.setFloat32(12 + 4 * 3 * n, t.bias, true);
  return b;
}

function predict(t: Trained, x: Float32Array): number {
  let z = t.bias;
  for (let j = 0; j < x.length; j++) z += t.w[j]! * ((x[j]! - t.mean[j]!) / t.scale[j]!);
  return 1 / (1 + Math.exp(-z));
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      out: { type: "string", default: "examples/MLModel" },
      mode: { type: "string", default: "telemetry" },
    },
  });
  const started = performance.now();
  const samples = dataset();
  const trainSet = samples.filter((s) => !s.holdout);
  const t = train(trainSet);
  const byClass: Record<string, { n: number; correct: number }> = {};
  let correct = 0;
  const held = samples.filter((s) => s.holdout);
  for (const s of held) {
    const ok = (predict(t, s.x) >= 0.5 ? 1 : 0) === s.label;
    correct += ok ? 1 : 0;
    byClass[s.cls] ??= { n: 0, correct: 0 };
    byClass[s.cls]!.n++;
    byClass[s.cls]!.correct += ok ? 1 : 0;
  }
  const wasm = await compileAssemblyScript(join(import.meta.dir, "models", "logistic.as"), 16);
  // Golden inputs: a spread of held-out vectors from every class.
  const goldenInputs = Object.keys(byClass).flatMap((c) =>
    held
      .filter((s) => s.cls === c)
      .slice(0, 4)
      .map((s) => Array.from(s.x)),
  );
  const summary = await buildModel({
    wasm,
    weights: weightsFile(t),
    manifest: {
      name: "outpost-lr",
      mode: values.mode as "telemetry" | "live",
      inputKinds: ["elf", "pe", "script"],
      threshold: 0.5,
      sampleRate: 0.25,
      featureVersion: 1,
      limits: { memoryPages: 16, fuel: 100_000, scoreBudgetMs: 20 },
      description: "logistic regression over feature version 1, trained by handlers/MLModel/train.ts",
    },
    goldenInputs,
    out: values.out!,
  });
  const kinds = (s: Sample) => s.cls;
  console.log(
    JSON.stringify(
      {
        samples: samples.length,
        train: trainSet.length,
        holdout: held.length,
        holdoutAccuracy: Math.round((correct / held.length) * 10_000) / 10_000,
        byClass: Object.fromEntries(Object.entries(byClass).map(([c, r]) => [c, `${r.correct}/${r.n}`])),
        benignKinds: [...new Set(samples.filter((s) => s.label === 0).map(kinds))],
        seconds: Math.round((performance.now() - started) / 100) / 10,
        model: summary,
      },
      null,
      2,
    ),
  );
}
