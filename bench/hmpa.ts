#!/usr/bin/env bun
/**
 * Hmpa_data allowlist benchmark: size, build, load and lookup speed of
 * `allowlist.bin` at 1M and 10M thumbprints, against the obvious baseline
 * measured in the same run — a JS Set<string> of the same thumbprints.
 *
 *   bun bench/hmpa.ts [--sizes 1000000,10000000] [--queries 1000000] [--no-set] [--json]
 *
 * Thumbprints are generated lazily from their index ("<Mitigation>:<64 hex>",
 * ~75 characters), so only the fingerprints (8 bytes each) and, for the
 * baseline, the Set itself are ever held. Queries are pre-generated and the
 * same strings go to both structures; hits are random members, misses are
 * indexes past n (never members). The Set does not normalise its input, so
 * its lookups are an optimistic baseline.
 */
import { heapStats } from "bun:jsc";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fingerprintParts, normalizeThumbprint } from "../handlers/Hmpa_data/format.ts";
import { Allowlist, validateAllowlist } from "../handlers/Hmpa_data/reader.ts";
import { buildAllowlistFromFingerprints, fingerprintsOf } from "../handlers/Hmpa_data/writer.ts";

const MITIGATIONS = [
  "StackPivot",
  "StackExec",
  "CallerCheck",
  "SimExecFlow",
  "HeapSpray",
  "DynHeapSpray",
  "IAF",
  "LoadLib",
  "NullPage",
  "EnforceDEP",
  "HollowProcess",
  "CodeCave",
] as const;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

const hex8 = (x: number) => x.toString(16).padStart(8, "0");
// 40 of the 64 hex digits come from 16 fixed chunks: realistic length and
// spread without paying for 64 random digits per thumbprint.
const CHUNKS = Array.from({ length: 16 }, (_, k) =>
  Array.from({ length: 5 }, (_, j) => hex8(fmix32(k * 5 + j + 0x9e3779b9))).join(""),
);

/** Distinct for every i < 2^32: the third group is i itself. */
function thumbprint(i: number): string {
  return `${MITIGATIONS[i % MITIGATIONS.length]}:${hex8(fmix32(i))}${hex8(fmix32(i ^ 0x5bd1e995))}${hex8(i)}${CHUNKS[i & 15]}`;
}

function* thumbprints(count: number): Generator<string> {
  for (let i = 0; i < count; i++) yield thumbprint(i);
}

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/**
 * JSC heap size after a full GC, string buffers included (they count as the
 * heap's extra memory). Steadier than RSS, which keeps freed pages.
 */
function heapBytes(): number {
  Bun.gc(true);
  return heapStats().heapSize;
}

function timed<T>(f: () => T): [T, number] {
  const started = performance.now();
  const value = f();
  return [value, performance.now() - started];
}

/** Lookups per second over `queries`; also returns how many answered true. */
function rate(
  queries: readonly string[],
  lookup: (q: string) => boolean,
): { perSecond: number; trues: number } {
  for (let i = 0; i < Math.min(10_000, queries.length); i++) lookup(queries[i]!); // warm the JIT
  let trues = 0;
  const started = performance.now();
  for (const q of queries) if (lookup(q)) trues++;
  const seconds = (performance.now() - started) / 1000;
  return { perSecond: queries.length / seconds, trues };
}

interface SizeResult {
  n: number;
  allowlist: {
    entries: number;
    bytes: number;
    bytesPerEntry: number;
    bucketBits: number;
    falsePositiveBound: number;
    hashMs: number;
    encodeMs: number;
    buildMs: number;
    readMs: number;
    validateMs: number;
    fromMs: number;
    loadMs: number;
    hitsPerSecond: number;
    missesPerSecond: number;
    prehashedHitsPerSecond: number;
    prehashedMissesPerSecond: number;
    falsePositives: number;
  };
  set: null | {
    buildMs: number;
    bytes: number;
    bytesPerEntry: number;
    hitsPerSecond: number;
    missesPerSecond: number;
  };
}

function benchSize(n: number, queryCount: number, withSet: boolean, dir: string): SizeResult {
  const [fps, hashMs] = timed(() => fingerprintsOf(thumbprints(n)));
  const [bytes, encodeMs] = timed(() => buildAllowlistFromFingerprints(fps));
  const file = join(dir, `allowlist-${n}.bin`);
  writeFileSync(file, bytes);

  const [onDisk, readMs] = timed(() => new Uint8Array(readFileSync(file)));
  const [, validateMs] = timed(() => validateAllowlist(onDisk));
  const [allowlist, fromMs] = timed(() => Allowlist.from(onDisk));

  const random = prng(n);
  const hits = Array.from({ length: queryCount }, () => thumbprint(random() % n));
  const misses = Array.from({ length: queryCount }, (_, i) => thumbprint(n + i));
  // Template literals build ropes; resolve them so neither structure pays for it.
  for (const q of hits) q.charCodeAt(q.length - 1);
  for (const q of misses) q.charCodeAt(q.length - 1);

  const hitRate = rate(hits, (q) => allowlist.has(q));
  const missRate = rate(misses, (q) => allowlist.has(q));
  if (hitRate.trues !== queryCount) throw new Error(`allowlist lost members: ${hitRate.trues}/${queryCount}`);

  const hashed = (qs: readonly string[]) => {
    const out = new Uint32Array(2 * qs.length);
    const parts = new Uint32Array(2);
    qs.forEach((q, i) => {
      fingerprintParts(normalizeThumbprint(q), parts);
      out[2 * i] = parts[0]!;
      out[2 * i + 1] = parts[1]!;
    });
    return out;
  };
  const prehashedRate = (words: Uint32Array) => {
    const count = words.length / 2;
    for (let i = 0; i < Math.min(10_000, count); i++) allowlist.hasParts(words[2 * i]!, words[2 * i + 1]!);
    const started = performance.now();
    let trues = 0;
    for (let i = 0; i < count; i++) if (allowlist.hasParts(words[2 * i]!, words[2 * i + 1]!)) trues++;
    return { perSecond: count / ((performance.now() - started) / 1000), trues };
  };
  const prehashedHits = prehashedRate(hashed(hits));
  const prehashedMisses = prehashedRate(hashed(misses));

  const result: SizeResult = {
    n,
    allowlist: {
      entries: allowlist.size,
      bytes: allowlist.byteLength,
      bytesPerEntry: allowlist.bytesPerEntry,
      bucketBits: allowlist.bucketBits,
      falsePositiveBound: allowlist.falsePositiveBound,
      hashMs,
      encodeMs,
      buildMs: hashMs + encodeMs,
      readMs,
      validateMs,
      fromMs,
      loadMs: validateMs + fromMs,
      hitsPerSecond: hitRate.perSecond,
      missesPerSecond: missRate.perSecond,
      prehashedHitsPerSecond: prehashedHits.perSecond,
      prehashedMissesPerSecond: prehashedMisses.perSecond,
      falsePositives: missRate.trues,
    },
    set: null,
  };

  if (withSet) {
    const before = heapBytes();
    const [set, buildMs] = timed(() => {
      const s = new Set<string>();
      for (const t of thumbprints(n)) s.add(t);
      return s;
    });
    const setBytes = heapBytes() - before;
    const setHits = rate(hits, (q) => set.has(q));
    const setMisses = rate(misses, (q) => set.has(q));
    if (setHits.trues !== queryCount || setMisses.trues !== 0)
      throw new Error("Set baseline answered wrongly");
    result.set = {
      buildMs,
      bytes: setBytes,
      bytesPerEntry: setBytes / set.size,
      hitsPerSecond: setHits.perSecond,
      missesPerSecond: setMisses.perSecond,
    };
    set.clear();
  }
  rmSync(file, { force: true });
  return result;
}

function formatTable(results: SizeResult[]): string {
  const fmt = (x: number, digits = 0) => x.toLocaleString("en-US", { maximumFractionDigits: digits });
  const mb = (b: number) => `${fmt(b / 1e6, 1)} MB`;
  const perSec = (x: number) => `${fmt(x / 1e6, 2)} M/s`;
  const lines: string[] = [];
  for (const r of results) {
    const a = r.allowlist;
    const s = r.set;
    const rows: [string, string, string, string][] = [
      ["memory", mb(a.bytes), s ? mb(s.bytes) : "-", s ? `${fmt(s.bytes / a.bytes, 1)}x smaller` : "-"],
      ["bytes/entry", fmt(a.bytesPerEntry, 3), s ? fmt(s.bytesPerEntry, 1) : "-", ""],
      [
        "build",
        `${fmt(a.buildMs)} ms (hash ${fmt(a.hashMs)} + encode ${fmt(a.encodeMs)})`,
        s ? `${fmt(s.buildMs)} ms` : "-",
        "",
      ],
      [
        "load",
        `${fmt(a.loadMs, 1)} ms (validate ${fmt(a.validateMs, 1)} + from ${fmt(a.fromMs, 3)}; read ${fmt(a.readMs, 1)})`,
        "-",
        "",
      ],
      [
        "lookups, hits",
        perSec(a.hitsPerSecond),
        s ? perSec(s.hitsPerSecond) : "-",
        s ? `${fmt(a.hitsPerSecond / s.hitsPerSecond, 2)}x` : "-",
      ],
      [
        "lookups, misses",
        perSec(a.missesPerSecond),
        s ? perSec(s.missesPerSecond) : "-",
        s ? `${fmt(a.missesPerSecond / s.missesPerSecond, 2)}x` : "-",
      ],
      ["pre-hashed hits", perSec(a.prehashedHitsPerSecond), "-", ""],
      ["pre-hashed misses", perSec(a.prehashedMissesPerSecond), "-", ""],
      [
        "false positives",
        `${a.falsePositives} (bound ${a.falsePositiveBound.toExponential(2)}/lookup)`,
        "0",
        "",
      ],
    ];
    const headers: [string, string, string, string] = [
      `n = ${fmt(r.n)}`,
      "allowlist.bin",
      "Set<string>",
      "ratio",
    ];
    const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
    const line = (cells: string[]) =>
      cells
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd();
    lines.push(line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line), "");
  }
  return lines.join("\n");
}

function parseCli(argv: string[]) {
  const value = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const sizes = (value("--sizes") ?? "1000000,10000000").split(",").map((s) => Number.parseInt(s, 10));
  const queries = Number.parseInt(value("--queries") ?? "1000000", 10);
  if (sizes.some((n) => !(n > 0)) || !(queries > 0)) throw new Error("usage: --sizes N[,N…] --queries N");
  return { sizes, queries, json: argv.includes("--json"), withSet: !argv.includes("--no-set") };
}

if (import.meta.main) {
  const opts = parseCli(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), "hmpa-bench-"));
  const started = performance.now();
  const results: SizeResult[] = [];
  try {
    for (const n of opts.sizes) results.push(benchSize(n, opts.queries, opts.withSet, dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const env = {
    bun: Bun.version,
    platform: `${process.platform}-${process.arch}`,
    queries: opts.queries,
    totalSeconds: (performance.now() - started) / 1000,
  };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ env, results }, null, 2)}\n`);
  } else {
    process.stdout.write(formatTable(results));
    process.stdout.write(
      `bun ${env.bun} ${env.platform}; ${opts.queries.toLocaleString("en-US")} queries per row; ` +
        `${env.totalSeconds.toFixed(1)} s total\n`,
    );
  }
}
