#!/usr/bin/env bun
/**
 * Loading large signature sets: `agent scan` of one small file (start-up,
 * the sandboxed scanner host and the dataset load included) against
 * `clamscan -d` on the same signature files, same run, alternating — plus
 * `contentctl datasets pack` and `agent update` (install) of them.
 *
 * Signatures (bench/realistic-sigs.ts): half hashes — 40 % MD5 (.hdb),
 * 10 % SHA-1 and 50 % SHA-256 (.hsb) — and half `.ndb` bodies, 40 % of
 * them cut from the machine code of this machine's libraries. Each size is
 * written as one file per kind and, for the largest, also split over ten
 * files. A third row installs the largest set from a package without
 * `signatures.idx` (generic `contentctl pack`), so the agent compiles the text.
 *
 * Reported per row: median wall and CPU time (user+system of the command
 * and every process it waited for) and the peak RSS of the whole process
 * tree (sampled from /proc every 20 ms: the CLI and the scanner host are
 * alive at once) — for Outpost and clamscan, and their ratios.
 *
 *   bun bench/scan-million.ts [--sizes 20000,1000000] [--runs 3] [--json]
 *
 * Uses dist/agent and dist/contentctl when built (`bun build.ts`), the
 * sources otherwise. Needs clamscan.
 */
import "reflect-metadata";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { initKeys } from "../core/crypto/keys.ts";
import { runSampled, type SampledRun } from "./proc-tree.ts";
import { realisticSignatureSet } from "./realistic-sigs.ts";
import { updateOnceArgv } from "./update-once.ts";

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "20000,1000000" },
    runs: { type: "string", default: "3" },
    json: { type: "boolean" },
  },
});
const SIZES = values
  .sizes!.split(",")
  .map(Number)
  .filter((n) => n > 0);
const RUNS = Number(values.runs);
const ROOT = join(import.meta.dir, "..");
const built = existsSync(join(ROOT, "dist/agent")) && existsSync(join(ROOT, "dist/contentctl"));
const agent = built ? [join(ROOT, "dist/agent")] : [process.execPath, join(ROOT, "bin/agent.ts")];
const contentctl = built
  ? [join(ROOT, "dist/contentctl")]
  : [process.execPath, join(ROOT, "bin/contentctl.ts")];
if (!Bun.which("clamscan")) {
  console.error("bench/scan-million: clamscan not found (apt-get install clamav)");
  process.exit(2);
}
const work = mkdtempSync(join(tmpdir(), "outpost-bench-million-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
const env = { ...process.env, OUTPOST_LOG_QUIET: "1" };

type Run = SampledRun;
const run = (cmd: string[], ok = [0]) => runSampled(cmd, { env, ok });

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const r2 = (x: number) => Math.round(x * 100) / 100;

/** Writes `total` signatures into `dir` as `files` files (≥ 3: one kind per file at 3). */
function writeSignatures(dir: string, total: number, files: number): void {
  const set = realisticSignatureSet(1, Math.floor(total / 2), total - Math.floor(total / 2), {
    prefix: "Million",
  });
  const hashLines = set.hashes.map((h, i) => {
    // 40 % MD5 in .hdb, 10 % SHA-1 and 50 % SHA-256 in .hsb (digests of random data stand in).
    if (i % 10 < 4) return { ext: "hdb", line: `${h.sha256.slice(0, 32)}:${h.size}:${h.name}` };
    if (i % 10 === 4) return { ext: "hsb", line: `${h.sha256.slice(0, 40)}:${h.size}:${h.name}` };
    return { ext: "hsb", line: `${h.sha256}:${h.size}:${h.name}` };
  });
  const byKind: Record<string, string[]> = { hdb: [], hsb: [], ndb: set.body.map((b) => b.line) };
  for (const h of hashLines) byKind[h.ext]!.push(h.line);
  // Ten files: hdb 3, hsb 3, ndb 4.
  const split: Record<string, number> = files <= 3 ? { hdb: 1, hsb: 1, ndb: 1 } : { hdb: 3, hsb: 3, ndb: 4 };
  mkdirSync(dir, { recursive: true });
  for (const [ext, lines] of Object.entries(byKind)) {
    const parts = split[ext]!;
    const per = Math.ceil(lines.length / parts);
    for (let k = 0; k < parts; k++) {
      writeFileSync(join(dir, `m${k}.${ext}`), `${lines.slice(k * per, (k + 1) * per).join("\n")}\n`);
    }
  }
}

const keys = join(work, "keys");
await initKeys(keys, { now: new Date(Date.now() - 86400_000) });
const small = join(work, "small.bin");
writeFileSync(small, new Uint8Array(4096).fill(0x41));

interface Row {
  signatures: number;
  files: number;
  index: boolean;
  pack: { wallMs: number; cpuMs: number; treeRssMb: number };
  install: { wallMs: number; cpuMs: number; treeRssMb: number };
  outpost: { wallMs: number; cpuMs: number; treeRssMb: number };
  clamscan: { wallMs: number; cpuMs: number; treeRssMb: number };
  ratio: { wall: number; cpu: number; rss: number };
}

async function measure(total: number, files: number, index: boolean): Promise<Row> {
  const tag = `${total}-${files}-${index ? "idx" : "text"}`;
  const db = join(work, tag, "db");
  writeSignatures(db, total, files);
  const tar = join(work, tag, "DatasetA-1.tar");
  const pack = index
    ? await run([...contentctl, "datasets", "pack", db, "--version", "1", "--keys", keys, "--out", tar])
    : await run([
        ...contentctl,
        "pack",
        "--type",
        "DatasetA",
        "--version",
        "1",
        "--keys",
        keys,
        "--out",
        tar,
        db,
      ]);
  const repo = join(work, tag, "repo");
  await run([...contentctl, "publish", "--repo", repo, "--group", "g", "--keys", keys, tar]);
  const state = join(work, tag, "state");
  const install = await run(updateOnceArgv(agent, { repo, group: "g", keys, state }));
  if (!/DatasetA\s+1/.test(install.out)) throw new Error(`install of ${tag} did not take: ${install.out}`);
  const ours: Run[] = [];
  const theirs: Run[] = [];
  // Page cache warm first, then alternate.
  await run([...agent, "scan", "--state", state, "--json", "--quiet", small], [0]);
  for (let i = 0; i < RUNS; i++) {
    ours.push(await run([...agent, "scan", "--state", state, "--json", "--quiet", small], [0]));
    theirs.push(await run(["clamscan", "--no-summary", "-d", db, small], [0]));
  }
  const summary = (rs: Run[]) => ({
    wallMs: Math.round(median(rs.map((r) => r.wallMs))),
    cpuMs: Math.round(median(rs.map((r) => r.cpuMs))),
    treeRssMb: Math.max(...rs.map((r) => r.treeRssMb)),
  });
  const o = summary(ours);
  const c = summary(theirs);
  const one = (r: Run) => ({
    wallMs: Math.round(r.wallMs),
    cpuMs: Math.round(r.cpuMs),
    treeRssMb: r.treeRssMb,
  });
  rmSync(join(work, tag), { recursive: true, force: true });
  return {
    signatures: total,
    files,
    index,
    pack: one(pack),
    install: one(install),
    outpost: o,
    clamscan: c,
    ratio: { wall: r2(o.wallMs / c.wallMs), cpu: r2(o.cpuMs / c.cpuMs), rss: r2(o.treeRssMb / c.treeRssMb) },
  };
}

const rows: Row[] = [];
/** A row whose pack, install or scan failed (e.g. the scanner host killed at its memory limit). */
const failed: { signatures: number; files: number; index: boolean; error: string }[] = [];
const largest = Math.max(...SIZES);
const plan: [number, number, boolean][] = SIZES.map((n) => [n, 3, true]);
if (largest >= 100_000) plan.push([largest, 10, true], [largest, 3, false]);
for (const [n, files, index] of plan) {
  try {
    rows.push(await measure(n, files, index));
  } catch (e) {
    failed.push({ signatures: n, files, index, error: (e as Error).message.slice(0, 400) });
  }
}
const load = (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");
const result = { runs: RUNS, binaries: built ? "dist" : "source", loadAverage: load, rows, failed };
if (values.json) console.log(JSON.stringify(result));
else {
  console.log(
    `signature-set load: agent scan of one 4 KiB file vs clamscan -d, same signature files; median of ${RUNS}; ${result.binaries} binaries; load ${load}`,
  );
  for (const r of rows) {
    console.log(
      `  ${r.signatures} signatures in ${r.files} files${r.index ? "" : ", no signatures.idx (compiled by the agent)"}`,
    );
    console.log(
      `    pack     ${r.pack.wallMs} ms wall, ${r.pack.cpuMs} ms CPU, ${r.pack.treeRssMb} MB   install ${r.install.wallMs} ms wall, ${r.install.cpuMs} ms CPU, ${r.install.treeRssMb} MB`,
    );
    console.log(
      `    outpost  ${r.outpost.wallMs} ms wall, ${r.outpost.cpuMs} ms CPU, peak RSS ${r.outpost.treeRssMb} MB (CLI + scanner host)`,
    );
    console.log(
      `    clamscan ${r.clamscan.wallMs} ms wall, ${r.clamscan.cpuMs} ms CPU, peak RSS ${r.clamscan.treeRssMb} MB`,
    );
    console.log(
      `    ratio    wall ${r.ratio.wall}×, CPU ${r.ratio.cpu}×, memory ${r.ratio.rss}× clamscan (goal ≤ 2× at 1M, ≤ 1× start-up)`,
    );
  }
  for (const f of failed) console.log(`  ${f.signatures} signatures in ${f.files} files: FAILED ${f.error}`);
}
