#!/usr/bin/env bun
/**
 * Lookup throughput of LocalRepData (`reputation.bin`) and Hmpa_data
 * (`allowlist.bin`) at 10M entries on one core (pins itself with taskset),
 * each as a ratio to baselines measured in the same run over the same keys:
 *
 *   - sorted array: the same keys in one plain sorted typed array, binary
 *     search from the top (what "no layout" costs: a cache miss per level);
 *   - one at a time: the readers' per-query APIs as they were before the batch
 *     API — LocalRepData `byHash(hex)`, Hmpa_data `hasParts(hi, lo)` (already hashed);
 *   - batch: `hashScores(keys, out)` / `hasManyParts(words, out)` — no string or
 *     object per query, misses of a group of queries overlapped.
 *
 * Queries: half members, half random non-members. Best of --runs.
 *
 *   bun bench/lookups.ts [--entries 10000000] [--queries 2000000] [--runs 5] [--json]
 */
import { parseArgs } from "node:util";
import { Allowlist } from "../handlers/Hmpa_data/reader.ts";
import { buildAllowlistFromFingerprints } from "../handlers/Hmpa_data/writer.ts";
import { layoutFor } from "../handlers/LocalRepData/format.ts";
import { ReputationDb } from "../handlers/LocalRepData/reader.ts";
import { buildReputation } from "../handlers/LocalRepData/writer.ts";

if (!process.env.OUTPOST_BENCH_PINNED && Bun.which("taskset")) {
  const r = Bun.spawnSync(["taskset", "-c", "0", process.execPath, import.meta.path, ...Bun.argv.slice(2)], {
    stdout: "inherit",
    stderr: "inherit",
    env: { ...process.env, OUTPOST_BENCH_PINNED: "1" },
  });
  process.exit(r.exitCode ?? 1);
}

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    entries: { type: "string", default: "10000000" },
    queries: { type: "string", default: "2000000" },
    runs: { type: "string", default: "5" },
    json: { type: "boolean" },
  },
});
const N = Number(values.entries);
const Q = Number(values.queries);
const RUNS = Number(values.runs);
const CHUNK = 4096; // queries per batch call, as a caller with a queue of lookups would send them

function randomWords(n: number): Uint32Array {
  const w = new Uint32Array(n);
  for (let o = 0; o < n; o += 16384) crypto.getRandomValues(w.subarray(o, Math.min(n, o + 16384)));
  return w;
}

/** Best-of-RUNS lookups per second of `pass` (which answers all Q queries and returns the hit count). */
function rate(pass: () => number, expectHits: number, what: string): number {
  let best = 0;
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    const hits = pass();
    const s = (performance.now() - t0) / 1000;
    if (hits !== expectHits) throw new Error(`${what}: ${hits} hits, expected ${expectHits}`);
    best = Math.max(best, Q / s);
  }
  return best;
}

// ---------------------------------------------------------------- LocalRepData
function reputation() {
  const keys = randomWords(4 * N);
  const built = buildReputation(
    { keys, scores: new Uint8Array(N).fill(50), classes: new Uint8Array(N) },
    { keys: new Uint32Array(0), scores: new Uint8Array(0), classes: new Uint8Array(0), names: [] },
  );
  const db = ReputationDb.from(built.bytes, { file: "reputation.bin" });
  // The file's key section is the keys globally sorted: the baseline searches a copy of it, from the top.
  const L = layoutFor(N, 0, 0);
  const sorted = new Uint32Array(built.bytes.buffer, L.hash.keysOffset, 4 * N).slice();
  const q = randomWords(4 * Q);
  for (let i = 1; i < Q; i += 2)
    q.set(sorted.subarray(4 * ((i * 7919) % N), 4 * ((i * 7919) % N) + 4), 4 * i);
  const hits = Q / 2;
  const hex = Array.from({ length: Q }, (_, i) =>
    Buffer.from(q.buffer, 16 * i, 16)
      .toString("hex")
      .padEnd(64, "0"),
  );
  const find = (a: number, b: number, c: number, d: number): boolean => {
    let lo = 0;
    let hi = N;
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      const o = 4 * m;
      const x = sorted[o]!;
      const less =
        x < a ||
        (x === a &&
          (sorted[o + 1]! < b ||
            (sorted[o + 1] === b && (sorted[o + 2]! < c || (sorted[o + 2] === c && sorted[o + 3]! < d)))));
      if (less) lo = m + 1;
      else hi = m;
    }
    const o = 4 * lo;
    return lo < N && sorted[o] === a && sorted[o + 1] === b && sorted[o + 2] === c && sorted[o + 3] === d;
  };
  const sortedRate = rate(
    () => {
      let h = 0;
      for (let i = 0; i < Q; i++) if (find(q[4 * i]!, q[4 * i + 1]!, q[4 * i + 2]!, q[4 * i + 3]!)) h++;
      return h;
    },
    hits,
    "sorted array",
  );
  const singleRate = rate(
    () => {
      let h = 0;
      for (let i = 0; i < Q; i++) if (db.byHash(hex[i]!)) h++;
      return h;
    },
    hits,
    "byHash",
  );
  const scores = new Int16Array(CHUNK);
  const batchRate = rate(
    () => {
      let h = 0;
      for (let o = 0; o < Q; o += CHUNK)
        h += db.hashScores(q.subarray(4 * o, 4 * Math.min(Q, o + CHUNK)), scores);
      return h;
    },
    hits,
    "hashScores",
  );
  return {
    entries: N,
    bytesPerEntry: built.bytes.length / N,
    sortedArrayPerSecond: sortedRate,
    oneAtATimePerSecond: singleRate,
    batchPerSecond: batchRate,
    goalPerSecond: 5e6,
  };
}

// ---------------------------------------------------------------- Hmpa_data
function allowlist() {
  const fps = new BigUint64Array(randomWords(2 * N).buffer);
  const bytes = buildAllowlistFromFingerprints(fps); // sorts fps in place
  const a = Allowlist.from(bytes);
  const w = new Uint32Array(fps.buffer); // sorted; little-endian (lo, hi) pairs
  const q = randomWords(2 * Q);
  for (let i = 1; i < Q; i += 2) {
    const k = (i * 7919) % N;
    q[2 * i] = w[2 * k + 1]!;
    q[2 * i + 1] = w[2 * k]!;
  }
  // Random non-members may hit as false positives (bound ≈ 1e-11 per lookup): count them with the reader itself.
  let hits = 0;
  for (let i = 0; i < Q; i++) if (a.hasParts(q[2 * i]!, q[2 * i + 1]!)) hits++;
  const find = (hi: number, lo: number): boolean => {
    let l = 0;
    let h = w.length >>> 1;
    while (l < h) {
      const m = (l + h) >>> 1;
      const mh = w[2 * m + 1]!;
      if (mh < hi || (mh === hi && w[2 * m]! < lo)) l = m + 1;
      else h = m;
    }
    return w[2 * l + 1] === hi && w[2 * l] === lo;
  };
  const sortedHits = Q / 2;
  const sortedRate = rate(
    () => {
      let h = 0;
      for (let i = 0; i < Q; i++) if (find(q[2 * i]!, q[2 * i + 1]!)) h++;
      return h;
    },
    sortedHits,
    "sorted array",
  );
  const singleRate = rate(
    () => {
      let h = 0;
      for (let i = 0; i < Q; i++) if (a.hasParts(q[2 * i]!, q[2 * i + 1]!)) h++;
      return h;
    },
    hits,
    "hasParts",
  );
  const out = new Uint8Array(CHUNK);
  const batchRate = rate(
    () => {
      let h = 0;
      for (let o = 0; o < Q; o += CHUNK)
        h += a.hasManyParts(q.subarray(2 * o, 2 * Math.min(Q, o + CHUNK)), out);
      return h;
    },
    hits,
    "hasManyParts",
  );
  return {
    entries: a.size,
    bytesPerEntry: a.bytesPerEntry,
    sortedArrayPerSecond: sortedRate,
    oneAtATimePerSecond: singleRate,
    batchPerSecond: batchRate,
    goalPerSecond: 10e6,
  };
}

const rep = reputation();
Bun.gc(true);
const hmpa = allowlist();
if (values.json) console.log(JSON.stringify({ queries: Q, runs: RUNS, reputation: rep, hmpa }));
else {
  const m = (x: number) => `${(x / 1e6).toFixed(2)} M/s`;
  for (const [name, r] of [
    ["LocalRepData reputation.bin", rep],
    ["Hmpa_data allowlist.bin", hmpa],
  ] as const) {
    console.log(
      `${name}: ${r.entries.toLocaleString()} entries, ${r.bytesPerEntry.toFixed(2)} bytes/entry, one core`,
    );
    console.log(`  sorted array, binary search   ${m(r.sortedArrayPerSecond)}   1`);
    console.log(
      `  one at a time (before)        ${m(r.oneAtATimePerSecond)}   ${(r.oneAtATimePerSecond / r.sortedArrayPerSecond).toFixed(2)}×`,
    );
    console.log(
      `  batch (${CHUNK} per call)         ${m(r.batchPerSecond)}   ${(r.batchPerSecond / r.sortedArrayPerSecond).toFixed(2)}×  (${(r.batchPerSecond / r.oneAtATimePerSecond).toFixed(2)}× one at a time; goal ${m(r.goalPerSecond)})`,
    );
  }
}
