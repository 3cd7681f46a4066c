#!/usr/bin/env bun
/**
 * Memory of an update cycle that installs a large package: `agent update
 * --once` installing AgentSoftware built from this very executable (~120
 * MB, the largest content Outpost ships), from a folder repository and over
 * HTTP (a static server on 127.0.0.1), against the same command installing
 * only a small package (Flags) in the same run: the floor every cycle pays.
 *
 * Reported per repository kind, as medians: the peak anonymous memory of the
 * agent process (RssAnon, sampled from /proc every 5 ms; the package's bytes
 * mapped from the download spool are page cache, not anonymous memory, see
 * core/update/spool.ts), the floor's, and what the package added per MB of
 * its size. A cycle that held the package in memory adds ~1–2 MB per MB
 * (chunks + their concatenation); one that spools it, ~0.
 *
 * With `--before PATH`, another build of the agent (e.g. main's, built with
 * `bun build.ts --outdir`) runs the same cycles alternately: a before →
 * after on the same machine load.
 *
 *   bun bench/update-memory.ts [--runs 3] [--before DIR/agent] [--json]
 *
 * Needs dist/agent and dist/contentctl (`bun build.ts`).
 */
import "reflect-metadata";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { initKeys } from "../core/crypto/keys.ts";
import { distExecutables } from "./dist.ts";
import { updateOnceArgv } from "./update-once.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    before: { type: "string" },
    json: { type: "boolean" },
  },
});
const RUNS = Number(values.runs);
const { root: ROOT, agent, contentctl } = distExecutables("update-memory");

const work = mkdtempSync(join(tmpdir(), "outpost-bench-update-memory-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
const env = { ...process.env, OUTPOST_LOG_QUIET: "1" };
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const mib = (kb: number) => Math.round(kb / 102.4) / 10;

function runOk(cmd: string[]): string {
  const r = Bun.spawnSync(cmd, { env, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0)
    throw new Error(`${cmd.join(" ")} exited ${r.exitCode}: ${r.stderr.toString().slice(0, 2000)}`);
  return r.stdout.toString();
}

// ---- two repositories: Flags alone (the floor), and Flags + AgentSoftware (not timed)
const keys = join(work, "keys");
await initKeys(keys, { now: new Date(Date.now() - 86400_000) });
const flagsTar = join(work, "Flags-1.tar");
runOk([
  contentctl,
  "pack",
  "--type",
  "Flags",
  "--version",
  "1",
  "--keys",
  keys,
  "--out",
  flagsTar,
  join(ROOT, "examples/Flags"),
]);
const softwareSrc = join(work, "AgentSoftware");
mkdirSync(softwareSrc);
copyFileSync(join(ROOT, "examples/AgentSoftware/software.json"), join(softwareSrc, "software.json"));
copyFileSync(agent, join(softwareSrc, "agent"));
const softwareTar = join(work, "AgentSoftware-1.tar");
runOk([
  contentctl,
  "pack",
  "--type",
  "AgentSoftware",
  "--version",
  "1",
  "--keys",
  keys,
  "--out",
  softwareTar,
  softwareSrc,
]);
const packageMb = statSync(softwareTar).size / 1024 / 1024;
const repos = { small: join(work, "repo-small"), large: join(work, "repo-large") };
runOk([contentctl, "publish", "--repo", repos.small, "--group", "g", "--keys", keys, flagsTar]);
for (const tar of [flagsTar, softwareTar])
  runOk([contentctl, "publish", "--repo", repos.large, "--group", "g", "--keys", keys, tar]);

// A static server over both, as a content mirror would be.
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(req) {
    const path = decodeURIComponent(new URL(req.url).pathname);
    if (path.includes("..")) return new Response("bad path", { status: 400 });
    const file = join(work, path);
    return existsSync(file) && statSync(file).isFile()
      ? new Response(Bun.file(file))
      : new Response("", { status: 404 });
  },
});
const urlOf = (dir: string) => `http://127.0.0.1:${server.port}/${dir.slice(work.length + 1)}`;

/** Peak RssAnon (kB) of the process while it runs, sampled every 5 ms. */
async function peakAnon(cmd: string[], expect: RegExp): Promise<number> {
  const p = Bun.spawn(cmd, { env, stdout: "pipe", stderr: "pipe" });
  let peak = 0;
  const sample = () => {
    try {
      const m = readFileSync(`/proc/${p.pid}/status`, "latin1").match(/^RssAnon:\s+(\d+)/m);
      if (m) peak = Math.max(peak, Number(m[1]));
    } catch {
      // Exited between samples.
    }
  };
  const timer = setInterval(sample, 5);
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const code = await p.exited;
  clearInterval(timer);
  if (code !== 0)
    throw new Error(`${cmd.join(" ")} exited ${code}: ${err.slice(0, 2000)} ${out.slice(0, 500)}`);
  // A cycle that installed less than it should would measure nothing.
  if (!expect.test(out)) throw new Error(`${cmd.join(" ")}: expected ${expect} in: ${out}`);
  return peak;
}

const builds: Record<string, string> = values.before
  ? { before: values.before, after: agent }
  : { after: agent };
const kinds = { folder: (dir: string) => dir, http: urlOf };
type Row = { build: string; repo: string; floorMb: number; peakMb: number; addedPerPackageMb: number };
const rows: Row[] = [];
const samples = new Map<string, { small: number[]; large: number[] }>();
for (let i = 0; i < RUNS; i++) {
  for (const [build, bin] of Object.entries(builds)) {
    for (const [kind, repoOf] of Object.entries(kinds)) {
      const key = `${build}/${kind}`;
      const s = samples.get(key) ?? { small: [], large: [] };
      samples.set(key, s);
      for (const size of ["small", "large"] as const) {
        const state = join(work, `state-${build}-${kind}-${size}-${i}`);
        s[size].push(
          await peakAnon(
            updateOnceArgv([bin], { repo: repoOf(repos[size]), group: "g", keys, state }),
            size === "large" ? /AgentSoftware\s+1/ : /Flags\s+1/,
          ),
        );
        rmSync(state, { recursive: true, force: true });
      }
    }
  }
}
for (const [key, s] of samples) {
  const [build, repo] = key.split("/") as [string, string];
  const floor = median(s.small);
  const peak = median(s.large);
  rows.push({
    build,
    repo,
    floorMb: mib(floor),
    peakMb: mib(peak),
    addedPerPackageMb: Math.round(((peak - floor) / 1024 / packageMb) * 100) / 100,
  });
}
server.stop(true);

if (values.json) {
  console.log(JSON.stringify({ packageMb: Math.round(packageMb), runs: RUNS, rows }, null, 2));
} else {
  console.log(
    `agent update --once installing AgentSoftware (${packageMb.toFixed(0)} MB), peak anonymous memory, median of ${RUNS}`,
  );
  console.log("build    repo     floor (Flags only)   with AgentSoftware   added per package MB");
  for (const r of rows) {
    console.log(
      `${r.build.padEnd(8)} ${r.repo.padEnd(8)} ${`${r.floorMb} MiB`.padStart(18)}   ${`${r.peakMb} MiB`.padStart(18)}   ${r.addedPerPackageMb.toFixed(2).padStart(20)}`,
    );
  }
}
