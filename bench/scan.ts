#!/usr/bin/env bun
/**
 * Scan throughput: `agent scan` against `clamscan -d` (Debian's ClamAV) over
 * the same corpus with the same signature files — 10k SHA-256 hash + 10k
 * body signatures in ClamAV syntax, generated — both timed as whole
 * commands, start-up (and, for Outpost, the sandboxed scanner host process)
 * included. Also checks both report the same infected files, and compares
 * the multi-pattern matcher alone against an Aho-Corasick automaton (the
 * textbook alternative: double-array trie with failure links) on the same bytes.
 *
 *   bun bench/scan.ts [--corpus-mb 256] [--hash 10000] [--body 10000] [--runs 3] [--sigs random,machine,machine-clean]
 *                     [--matcher-sizes 10000,100000] [--json]
 *
 * Three signature sets, each measured against clamscan in the same run:
 * `random` (bodies of random bytes), `machine` (40 % of the bodies cut
 * from the machine code of this machine's libraries — what real signature
 * sets look like, and what makes naive anchors fire on every other x86
 * instruction) and `machine-clean` (the same without the few hundred bodies
 * that occur in the copied binaries: with them most of the corpus is
 * "infected" and both scanners stop early; a clean machine is the usual case). Peak RSS of both commands is reported too. Each set is
 * compared twice: first match per file (both programs' default) and every
 * match (`agent scan --all-matches` against `clamscan --allmatch`).
 *
 * The corpus is regular files copied from /usr/bin (real ELF binaries) up to
 * --corpus-mb, plus 300 generated objects carrying signature instances and
 * a few archives. Needs clamscan (apt-get install clamav).
 */
import "reflect-metadata";
import {
  copyFileSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { initKeys } from "../core/crypto/keys.ts";
import { AnchorIndex } from "../handlers/_shared/matcher/matcher.ts";
import { compileSources } from "../handlers/DatasetA/compiled.ts";
import { Dataset } from "../handlers/DatasetA/engine.ts";
import {
  type GeneratedSet,
  generateSignatureSet,
  gzip,
  implant,
  Rng,
  writeZip,
} from "../handlers/DatasetA/testutil.ts";
import { runSampled } from "./proc-tree.ts";
import { realisticSignatureSet } from "./realistic-sigs.ts";
import { updateOnceArgv } from "./update-once.ts";

const { values } = parseArgs({
  options: {
    "corpus-mb": { type: "string", default: "256" },
    hash: { type: "string", default: "10000" },
    body: { type: "string", default: "10000" },
    runs: { type: "string", default: "3" },
    /** Anchor counts for the matcher comparison ("" skips it; 100000 takes a while to build the automaton). */
    "matcher-sizes": { type: "string", default: "10000,100000" },
    /**
     * Signature sets to measure: random bodies; 40 % cut from real machine code (bench/realistic-sigs.ts);
     * and the same without the bodies that occur in the copied binaries (a clean machine: no early exits).
     */
    sigs: { type: "string", default: "random,machine,machine-clean" },
    json: { type: "boolean" },
  },
});
const CORPUS_BYTES = Number(values["corpus-mb"]) * 1024 * 1024;
const RUNS = Number(values.runs);
const ROOT = join(import.meta.dir, "..");
const bun = process.execPath;
const agentCmd = [bun, join(ROOT, "bin/agent.ts")];
const contentctl = [bun, join(ROOT, "bin/contentctl.ts")];

if (!Bun.which("clamscan")) {
  console.error("bench/scan: clamscan not found (apt-get install clamav)");
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), "outpost-bench-scan-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
const quiet = { ...process.env, OUTPOST_LOG_QUIET: "1" };

function sh(cmd: string[], ok = [0]): { out: string; code: number } {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", env: quiet });
  if (!ok.includes(r.exitCode))
    throw new Error(`${cmd.join(" ")} exited ${r.exitCode}: ${r.stderr.toString().slice(0, 2000)}`);
  return { out: r.stdout.toString(), code: r.exitCode };
}

// ---- corpus
const corpus = join(work, "corpus");
mkdirSync(join(corpus, "bin"), { recursive: true });
let binBytes = 0;
let binFiles = 0;
for (const name of readdirSync("/usr/bin").sort()) {
  if (binBytes >= CORPUS_BYTES) break;
  const p = join("/usr/bin", name);
  const st = lstatSync(p);
  if (!st.isFile() || st.size === 0) continue;
  copyFileSync(p, join(corpus, "bin", name));
  binBytes += st.size;
  binFiles++;
}
interface Timed {
  ms: number;
  /** User + system CPU of the command and the processes it waited for (the scanner host). */
  cpuMs: number;
  out: string;
  /** Peak summed RSS of the command and its descendants (the scanner host), MB (bench/proc-tree.ts). */
  rssMb: number;
}
async function timed(cmd: string[]): Promise<Timed> {
  const r = await runSampled(cmd, { env: quiet, ok: [0, 1] });
  return { ms: r.wallMs, cpuMs: r.cpuMs, out: r.out, rssMb: r.treeRssMb };
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const keys = join(work, "keys");
await initKeys(keys, { now: new Date(Date.now() - 86400_000) });

/**
 * The set without the body signatures that occur in the copied /usr/bin files. Cut from
 * machine code, a few hundred of them match real binaries, so most of the corpus is "infected"
 * and both scanners stop at each file's first match; a clean machine is the usual case, and
 * there every byte of every file is matched. The generated objects still carry instances.
 */
async function withoutCorpusHits(set: GeneratedSet): Promise<GeneratedSet> {
  const enc = new TextEncoder();
  const ds = new Dataset(
    compileSources([
      { path: "bench.hsb", bytes: enc.encode(set.hsb) },
      { path: "bench.ndb", bytes: enc.encode(set.ndb) },
    ]),
  );
  const hits = new Set<string>();
  const spillDir = join(work, "spill");
  mkdirSync(spillDir, { recursive: true });
  for (const name of readdirSync(join(corpus, "bin"))) {
    const r = await ds.scan(readFileSync(join(corpus, "bin", name)), {
      spillDir,
      limits: { firstMatch: false },
    });
    for (const d of r.detections) hits.add(d.name);
  }
  const ndb = set.ndb
    .split("\n")
    .filter((line) => !hits.has(line.slice(0, line.indexOf(":"))))
    .join("\n");
  return { ...set, ndb, body: set.body.filter((b) => !hits.has(b.name)) };
}

async function measure(kind: string) {
  // ---- signatures (the same files for both scanners)
  const sigOpts = { hashBacked: 10, prefix: "Bench" };
  const generated =
    kind === "machine" || kind === "machine-clean"
      ? realisticSignatureSet(20241, Number(values.hash), Number(values.body), sigOpts)
      : generateSignatureSet(20241, Number(values.hash), Number(values.body), sigOpts);
  const set = kind === "machine-clean" ? await withoutCorpusHits(generated) : generated;
  const db = join(work, kind, "db");
  mkdirSync(db, { recursive: true });
  writeFileSync(join(db, "bench.hsb"), set.hsb);
  writeFileSync(join(db, "bench.ndb"), set.ndb);

  const gen = join(corpus, `gen-${kind}`);
  mkdirSync(gen);
  let bytes = binBytes;
  let files = binFiles;
  const rng = new Rng(7);
  for (let i = 0; i < 300; i++) {
    const data = rng.bytes(4096 + rng.int(256 * 1024));
    if (i % 3 === 0) {
      const inst = set.body[rng.int(set.body.length)]!.instance;
      implant(data, inst, rng.int(data.length - inst.length));
    }
    writeFileSync(join(gen, `obj${i}.bin`), data);
    bytes += data.length;
    files++;
  }
  for (let i = 0; i < 10; i++) {
    writeFileSync(join(gen, `hashed${i}.bin`), set.hashes[i]!.data!);
    bytes += set.hashes[i]!.data!.length;
    files++;
  }
  const zip = writeZip([
    { name: "a.bin", data: Buffer.concat([rng.bytes(5000), set.body[11]!.instance, rng.bytes(5000)]) },
    { name: "b.txt", data: new TextEncoder().encode("clean member ".repeat(1000)) },
  ]);
  writeFileSync(join(gen, "bundle.zip"), zip);
  const tgz = gzip(Buffer.concat([rng.bytes(20000), set.body[12]!.instance]));
  writeFileSync(join(gen, "blob.gz"), tgz);
  bytes += zip.length + tgz.length;
  files += 2;

  // ---- Outpost: a signed DatasetA package, installed into a state dir (not timed)
  sh([
    ...contentctl,
    "datasets",
    "pack",
    db,
    "--version",
    "1",
    "--keys",
    keys,
    "--out",
    join(work, kind, "DatasetA-1.tar"),
  ]);
  sh([
    ...contentctl,
    "publish",
    "--repo",
    join(work, kind, "repo"),
    "--group",
    "public-1",
    "--keys",
    keys,
    join(work, kind, "DatasetA-1.tar"),
  ]);
  const state = join(work, kind, "state");
  sh(updateOnceArgv(agentCmd, { repo: join(work, kind, "repo"), group: "public-1", keys, state }));

  return [
    await compare(kind, db, state, gen, bytes, files, "first"),
    await compare(kind, db, state, gen, bytes, files, "all"),
  ];
}

/**
 * One comparison: first match per file (`agent scan` and clamscan as they
 * are by default) or every match (`agent scan --all-matches` and
 * `clamscan --allmatch`). Same signatures, same files, alternated runs.
 */
async function compare(
  kind: string,
  db: string,
  state: string,
  gen: string,
  bytes: number,
  files: number,
  mode: "first" | "all",
) {
  const all = mode === "all";
  const outpost = () =>
    timed([
      ...agentCmd,
      "scan",
      "--state",
      state,
      "--json",
      "--quiet",
      ...(all ? ["--all-matches"] : []),
      join(corpus, "bin"),
      gen,
    ]);
  const clam = () =>
    timed([
      "clamscan",
      "--no-summary",
      "--infected",
      "--stdout",
      ...(all ? ["--allmatch"] : []),
      "-d",
      join(db, "bench.hsb"),
      "-d",
      join(db, "bench.ndb"),
      "-r",
      join(corpus, "bin"),
      gen,
    ]);

  // Warm the page cache (and both programs) once, then alternate.
  const firstOurs = await outpost();
  const firstClam = await clam();
  const ours: Timed[] = [];
  const theirs: Timed[] = [];
  for (let i = 0; i < RUNS; i++) {
    ours.push(await outpost());
    theirs.push(await clam());
  }

  // Same infected files?
  const ourFiles = new Set(
    (JSON.parse(firstOurs.out) as { detections: { target: string }[] }).detections.map((d) => d.target),
  );
  const clamFiles = new Set(
    firstClam.out
      .split("\n")
      .map((l) => l.match(/^(.*): \S+ FOUND$/)?.[1])
      .filter((x): x is string => !!x),
  );
  const agree = ourFiles.size === clamFiles.size && [...ourFiles].every((f) => clamFiles.has(f));
  // Distinct (file, signature) pairs: clamscan --allmatch prints a line per occurrence, not per signature.
  const ourDetections = new Set(
    (JSON.parse(firstOurs.out) as { detections: { target: string; name: string }[] }).detections.map(
      (d) => `${d.target}\t${d.name}`,
    ),
  ).size;
  const clamDetections = new Set(
    firstClam.out
      .split("\n")
      .map((l) => l.match(/^(.*): (\S+?)(?:\.UNOFFICIAL)? FOUND$/))
      .filter((m): m is RegExpMatchArray => !!m)
      .map((m) => `${m[1]}\t${m[2]}`),
  ).size;

  const mb = bytes / 1e6;
  const oursMs = median(ours.map((r) => r.ms));
  const theirMs = median(theirs.map((r) => r.ms));
  return {
    signatures: kind,
    matches: mode,
    corpus: { files, megabytes: Math.round(mb * 10) / 10 },
    outpost: {
      wallMs: Math.round(oursMs),
      cpuMs: Math.round(median(ours.map((r) => r.cpuMs))),
      mbPerSecond: Math.round(mb / (oursMs / 1000)),
      peakRssMb: Math.max(...ours.map((r) => r.rssMb)),
    },
    clamscan: {
      wallMs: Math.round(theirMs),
      cpuMs: Math.round(median(theirs.map((r) => r.cpuMs))),
      mbPerSecond: Math.round(mb / (theirMs / 1000)),
      peakRssMb: Math.max(...theirs.map((r) => r.rssMb)),
    },
    speedup: Math.round((theirMs / oursMs) * 100) / 100,
    /** The same ratio in CPU time: steadier than wall time on a shared machine. */
    cpuSpeedup:
      Math.round((median(theirs.map((r) => r.cpuMs)) / median(ours.map((r) => r.cpuMs))) * 100) / 100,
    sameInfectedFiles: agree,
    infectedFiles: { outpost: ourFiles.size, clamscan: clamFiles.size },
    detections: { outpost: ourDetections, clamscan: clamDetections },
  };
}

const sets: Awaited<ReturnType<typeof compare>>[] = [];
for (const kind of values.sigs!.split(",").filter(Boolean)) sets.push(...(await measure(kind)));

// ---- the matcher alone: this design against Aho-Corasick, same anchors, same bytes
/**
 * Aho-Corasick the way a C scanner would lay it out: a double-array trie
 * (base/check) with failure links and a 256-entry root row. Construction
 * finds free cells through a union-find "next free" array, so 100k anchors
 * build in seconds.
 */
function ahoCorasick(patterns: Uint8Array[]) {
  // Trie with sorted child lists.
  const kids: { c: number[]; n: number[] }[] = [{ c: [], n: [] }];
  const out: number[] = [0];
  for (const p of patterns) {
    let s = 0;
    for (const c of p) {
      const k = kids[s]!;
      let lo = 0;
      let hi = k.c.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (k.c[mid]! < c) lo = mid + 1;
        else hi = mid;
      }
      if (k.c[lo] === c) s = k.n[lo]!;
      else {
        const n = kids.length;
        kids.push({ c: [], n: [] });
        out.push(0);
        k.c.splice(lo, 0, c);
        k.n.splice(lo, 0, n);
        s = n;
      }
    }
    out[s] = 1;
  }
  const S = kids.length;
  // Failure links over the trie (BFS).
  const child = (s: number, c: number): number => {
    const k = kids[s]!;
    let lo = 0;
    let hi = k.c.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (k.c[mid]! < c) lo = mid + 1;
      else hi = mid;
    }
    return k.c[lo] === c ? k.n[lo]! : -1;
  };
  const failT = new Int32Array(S);
  const order: number[] = [...kids[0]!.n];
  for (let h = 0; h < order.length; h++) {
    const s = order[h]!;
    const k = kids[s]!;
    for (let x = 0; x < k.c.length; x++) {
      const c = k.c[x]!;
      const n = k.n[x]!;
      let f = failT[s]!;
      let g = child(f, c);
      while (g < 0 && f !== 0) {
        f = failT[f]!;
        g = child(f, c);
      }
      failT[n] = g > 0 && g !== n ? g : 0;
      if (out[failT[n]!]) out[n] = 1;
      order.push(n);
    }
  }
  // Double array, placed in BFS order; `free` finds the next unused cell.
  const cap = 3 * S + 1024;
  const base = new Int32Array(cap);
  const check = new Int32Array(cap).fill(-1);
  const free = new Int32Array(cap + 1);
  for (let i = 0; i <= cap; i++) free[i] = i;
  const find = (i: number): number => {
    let r = i;
    while (free[r] !== r) r = free[r]!;
    while (free[i] !== r) {
      const nx = free[i]!;
      free[i] = r;
      i = nx;
    }
    return r;
  };
  const use = (i: number) => {
    free[i] = i + 1;
  };
  const idx = new Int32Array(S);
  check[0] = -2;
  use(0);
  for (const s of [0, ...order]) {
    const k = kids[s]!;
    if (!k.c.length) continue;
    const c0 = k.c[0]!;
    let p0 = find(Math.max(1, c0 + 1));
    for (;;) {
      const b = p0 - c0;
      let ok = b >= 1;
      for (let x = 1; ok && x < k.c.length; x++) ok = check[b + k.c[x]!] === -1;
      if (ok) break;
      p0 = find(p0 + 1);
      if (p0 + 256 >= cap) throw new Error("double array full");
    }
    const b = p0 - c0;
    base[idx[s]!] = b;
    for (let x = 0; x < k.c.length; x++) {
      const cell = b + k.c[x]!;
      check[cell] = idx[s]!;
      use(cell);
      idx[k.n[x]!] = cell;
    }
  }
  const fail = new Int32Array(cap);
  const outA = new Uint8Array(cap);
  for (let s = 0; s < S; s++) {
    fail[idx[s]!] = idx[failT[s]!]!;
    outA[idx[s]!] = out[s]!;
  }
  const root = new Int32Array(256);
  for (let c = 0; c < 256; c++) root[c] = check[base[0]! + c] === 0 ? base[0]! + c : 0;
  return (d: Uint8Array): number => {
    let s = 0;
    let hits = 0;
    for (let i = 0; i < d.length; i++) {
      const c = d[i]!;
      for (;;) {
        if (s === 0) {
          s = root[c]!;
          break;
        }
        const p = base[s]! + c;
        if (check[p] === s) {
          s = p;
          break;
        }
        s = fail[s]!;
      }
      if (outA[s]) hits++;
    }
    return hits;
  };
}

const sample: Uint8Array[] = [];
let sampleBytes = 0;
for (const name of readdirSync(join(corpus, "bin")).sort()) {
  if (sampleBytes > 32 * 1024 * 1024) break;
  const d = new Uint8Array(readFileSync(join(corpus, "bin", name)));
  sample.push(d);
  sampleBytes += d.length;
}
function matcherMBps(scan: (d: Uint8Array) => void): number {
  for (const d of sample) scan(d);
  const t = performance.now();
  for (const d of sample) scan(d);
  return Math.round(sampleBytes / 1e6 / ((performance.now() - t) / 1000));
}
const matcher: { anchors: number; anchorIndexMBps: number; ahoCorasickMBps: number }[] = [];
for (const n of values["matcher-sizes"]!.split(",")
  .map(Number)
  .filter((x) => x > 0)) {
  const sigs = generateSignatureSet(99, 0, n, { prefix: "M" });
  const { anchors } = compileSources([{ path: "m.ndb", bytes: new TextEncoder().encode(sigs.ndb) }]);
  const idx = new AnchorIndex(anchors);
  const words = Array.from(anchors.keys, (k) =>
    Uint8Array.of(k >>> 24, (k >>> 16) & 255, (k >>> 8) & 255, k & 255),
  );
  const ac = ahoCorasick(words);
  matcher.push({
    anchors: n,
    anchorIndexMBps: matcherMBps((d) => idx.scan(d, () => false)),
    ahoCorasickMBps: matcherMBps((d) => ac(d)),
  });
}

const result = {
  signatures: { hash: Number(values.hash), body: Number(values.body) },
  runs: RUNS,
  sets,
  matcher,
};
if (values.json) console.log(JSON.stringify(result));
else {
  for (const r of sets) {
    console.log(
      `scan, ${r.signatures} signatures, ${r.matches === "first" ? "first match per file (both defaults)" : "all matches (--all-matches vs --allmatch)"}: ${r.corpus.files} files, ${r.corpus.megabytes} MB; ${result.signatures.hash} hash + ${result.signatures.body} body signatures; median of ${RUNS}, start-up included`,
    );
    const flags = r.matches === "all" ? ["--all-matches", "--allmatch"] : ["", ""];
    console.log(
      `  outpost  agent scan ${flags[0]}  ${r.outpost.wallMs} ms (CPU ${r.outpost.cpuMs} ms)  ${r.outpost.mbPerSecond} MB/s  peak RSS ${r.outpost.peakRssMb} MB`,
    );
    console.log(
      `  clamscan -d ${flags[1]}          ${r.clamscan.wallMs} ms (CPU ${r.clamscan.cpuMs} ms)  ${r.clamscan.mbPerSecond} MB/s  peak RSS ${r.clamscan.peakRssMb} MB`,
    );
    console.log(`  speed vs clamscan     ${r.speedup}× wall, ${r.cpuSpeedup}× CPU  (goal ≥ 1×)`);
    console.log(
      `  same infected files   ${r.sameInfectedFiles} (${r.infectedFiles.outpost} vs ${r.infectedFiles.clamscan}); detections ${r.detections.outpost} vs ${r.detections.clamscan}`,
    );
  }
  for (const m of matcher) {
    console.log(
      `  matcher, ${m.anchors} anchors: anchor index ${m.anchorIndexMBps} MB/s, Aho-Corasick ${m.ahoCorasickMBps} MB/s (${Math.round((m.anchorIndexMBps / m.ahoCorasickMBps) * 10) / 10}×)`,
    );
  }
}
