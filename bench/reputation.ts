#!/usr/bin/env bun
/**
 * LocalRepData: size, load time and lookup speed of `reputation.bin` at 10M
 * file hashes, and — as the baseline measured in the same run — the obvious
 * alternative at 1M (a JSON list parsed into a Map keyed by hex digest:
 * what "load well under a second" is about).
 *
 *   bun bench/reputation.ts [--entries 10000000] [--baseline 1000000] [--queries 1000000] [--json]
 *
 * Load is measured three ways: ReputationDb.from over bytes already in
 * memory (the handler's own cost: header checks + typed-array views), over
 * a fresh read of the file, and over Bun.mmap of it (zero-copy, paged in on
 * demand). `validate` (the full O(n) check before a content switch) and
 * the store's SHA-384 re-check of the payload are reported separately.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ReputationDb, validateReputation } from "../handlers/LocalRepData/reader.ts";
import { buildReputation } from "../handlers/LocalRepData/writer.ts";

const { values } = parseArgs({
  options: {
    entries: { type: "string", default: "10000000" },
    baseline: { type: "string", default: "1000000" },
    queries: { type: "string", default: "1000000" },
    json: { type: "boolean" },
  },
});
const N = Number(values.entries);
const B = Number(values.baseline);
const Q = Number(values.queries);
const work = mkdtempSync(join(tmpdir(), "outpost-bench-rep-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

const hexOf = (keys: Uint32Array, i: number) =>
  Buffer.from(keys.buffer, keys.byteOffset + 16 * i, 16).toString("hex") + "00".repeat(16);

function randomKeys(n: number): Uint32Array {
  const k = new Uint32Array(4 * n);
  for (let o = 0; o < k.length; o += 16384)
    crypto.getRandomValues(k.subarray(o, Math.min(k.length, o + 16384)));
  return k;
}
const empty = {
  keys: new Uint32Array(0),
  scores: new Uint8Array(0),
  classes: new Uint8Array(0),
  names: [] as string[],
};

// ---- 10M: build, write, load, lookups
const keys = randomKeys(N);
const scores = new Uint8Array(N);
for (let i = 0; i < N; i++) scores[i] = i % 101;
let t = performance.now();
const built = buildReputation({ keys, scores, classes: new Uint8Array(N) }, empty);
const buildMs = performance.now() - t;
const file = join(work, "reputation.bin");
writeFileSync(file, built.bytes);

t = performance.now();
validateReputation(built.bytes, { file });
const validateMs = performance.now() - t;

t = performance.now();
const inMemory = ReputationDb.from(built.bytes, { file });
const loadInMemoryMs = performance.now() - t;

t = performance.now();
const fromRead = ReputationDb.from(new Uint8Array(readFileSync(file)), { file });
const loadReadMs = performance.now() - t;

t = performance.now();
const mapped = ReputationDb.from(Bun.mmap(file, { shared: false }), { file });
const loadMmapMs = performance.now() - t;

t = performance.now();
new Bun.CryptoHasher("sha384").update(built.bytes).digest();
const sha384Ms = performance.now() - t;

// Queries: half members, half random non-members, as hex strings (what callers send).
const queries: string[] = [];
const qkeys = randomKeys(Q);
for (let i = 0; i < Q; i++) queries.push(i % 2 ? hexOf(keys, (i * 7919) % N) : hexOf(qkeys, i));
function lookupsPerSecond(db: ReputationDb): number {
  let hits = 0;
  for (let i = 0; i < 10_000; i++) if (db.byHash(queries[i]!)) hits++;
  const start = performance.now();
  for (const q of queries) if (db.byHash(q)) hits++;
  const s = (performance.now() - start) / 1000;
  if (hits < Q / 2) throw new Error(`expected ≥ ${Q / 2} hits, got ${hits}`);
  return Math.round(Q / s);
}
const lookups = lookupsPerSecond(inMemory);
const lookupsMapped = lookupsPerSecond(mapped);
void fromRead;

// ---- baseline at B: JSON list → Map<hex, score>, against reputation.bin at the same size
const bkeys = keys.subarray(0, 4 * B);
const json = JSON.stringify(
  Array.from({ length: B }, (_, i) => ({ sha256: hexOf(bkeys, i), score: scores[i] })),
);
const jsonFile = join(work, "reputation.json");
writeFileSync(jsonFile, json);
const small = buildReputation(
  { keys: bkeys.slice(), scores: scores.slice(0, B), classes: new Uint8Array(B) },
  empty,
);
const smallFile = join(work, "small.bin");
writeFileSync(smallFile, small.bytes);
t = performance.now();
const map = new Map<string, number>();
for (const e of JSON.parse(readFileSync(jsonFile, "utf8")) as { sha256: string; score: number }[])
  map.set(e.sha256, e.score);
const jsonLoadMs = performance.now() - t;
t = performance.now();
const smallDb = ReputationDb.from(new Uint8Array(readFileSync(smallFile)), { file: smallFile });
const smallLoadMs = performance.now() - t;
const bq = queries.map((q, i) => (i % 2 ? hexOf(bkeys, (i * 7919) % B) : q));
let start = performance.now();
let mapHits = 0;
for (const q of bq) if (map.get(q) !== undefined) mapHits++;
const mapLookups = Math.round(Q / ((performance.now() - start) / 1000));
start = performance.now();
let dbHits = 0;
for (const q of bq) if (smallDb.byHash(q)) dbHits++;
const smallLookups = Math.round(Q / ((performance.now() - start) / 1000));
if (mapHits !== dbHits) throw new Error(`baseline disagrees: ${mapHits} vs ${dbHits}`);

const r2 = (x: number) => Math.round(x * 100) / 100;
const result = {
  entries: N,
  bytes: built.bytes.length,
  bytesPerEntry: r2(built.bytes.length / N),
  buildMs: Math.round(buildMs),
  validateMs: Math.round(validateMs),
  loadMs: {
    inMemory: r2(loadInMemoryMs),
    readFile: Math.round(loadReadMs),
    mmap: r2(loadMmapMs),
    storeSha384: Math.round(sha384Ms),
  },
  lookupsPerSecond: lookups,
  lookupsPerSecondMmap: lookupsMapped,
  baseline: {
    entries: B,
    jsonMapLoadMs: Math.round(jsonLoadMs),
    repBinLoadMs: r2(smallLoadMs),
    loadSpeedup: Math.round(jsonLoadMs / Math.max(smallLoadMs, 0.001)),
    mapLookupsPerSecond: mapLookups,
    repBinLookupsPerSecond: smallLookups,
    lookupRatio: r2(smallLookups / mapLookups),
    jsonBytesPerEntry: r2(json.length / B),
  },
};
if (values.json) console.log(JSON.stringify(result));
else {
  console.log(`LocalRepData at ${N.toLocaleString()} file hashes`);
  console.log(
    `  size                 ${(result.bytes / 1e6).toFixed(1)} MB, ${result.bytesPerEntry} bytes/entry (goal ≤ 40)`,
  );
  console.log(`  build / validate     ${result.buildMs} ms / ${result.validateMs} ms`);
  console.log(
    `  load: bytes in hand  ${result.loadMs.inMemory} ms   read file ${result.loadMs.readFile} ms   mmap ${result.loadMs.mmap} ms`,
  );
  console.log(
    `  store SHA-384 check  ${result.loadMs.storeSha384} ms (the content store re-verifies payload digests on read)`,
  );
  console.log(
    `  lookups              ${result.lookupsPerSecond.toLocaleString()}/s (mmap: ${result.lookupsPerSecondMmap.toLocaleString()}/s)`,
  );
  console.log(`baseline at ${B.toLocaleString()}: JSON list → Map<hex, score>`);
  console.log(
    `  load                 JSON ${result.baseline.jsonMapLoadMs} ms vs reputation.bin ${result.baseline.repBinLoadMs} ms (${result.baseline.loadSpeedup}× faster)`,
  );
  console.log(
    `  lookups              Map ${mapLookups.toLocaleString()}/s vs reputation.bin ${smallLookups.toLocaleString()}/s (${result.baseline.lookupRatio}×)`,
  );
  console.log(`  size                 JSON ${result.baseline.jsonBytesPerEntry} bytes/entry`);
}
