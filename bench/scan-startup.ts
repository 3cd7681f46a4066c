#!/usr/bin/env bun
/**
 * Start-up to scan one small file: `dist/agent scan --state S FILE` against
 * `clamscan -d … FILE` on the same 20k signatures (10k SHA-256 hashes in
 * `.hsb`, 10k `.ndb` bodies, 40 % of them cut from real machine code —
 * bench/realistic-sigs.ts), alternating in the same run. Everything a user
 * waits for is included: the CLI's own start-up, the sandboxed scanner host
 * it launches, loading the signatures, the scan.
 *
 * Reported per command, as medians: CPU time (user + system of the command
 * and every process it waited for — the scanner host), wall time, and the
 * peak of the process tree's summed PSS and RSS (sampled from /proc every
 * 20 ms; PSS splits the pages the CLI and its host share from the one
 * executable, RSS counts them twice). Floors in the same run: `bun -e 0`
 * and `dist/agent --version`.
 *
 * A second offline row scans on an endpoint-like state dir: the same
 * DatasetA plus the examples of eight other content types in five more host
 * groups (examples/: ScheduledQueryPack, TELEMSUP, ESH, EPIPS_data,
 * NTP_OVERRIDES, MLModel, Flags, RemapperRules) — a one-shot scan should not
 * pay for content it does not use (`--bare` skips it).
 *
 * A floor row: `agent scan` on a state dir with nothing installed — the
 * CLI's own start-up, configuration and store (it starts no host and finds
 * no content; the file is reported HND_NOT_LOADED). What the full scan
 * takes beyond it is the content's read and check, the sandboxed host's
 * launch and boot, and the load.
 *
 * With `--online`, also `agent scan` while `agent run` holds the same state
 * dir (the scan goes to the running agent's scanner host, like clamdscan to
 * clamd); the running agent's own memory is not counted there.
 *
 * With `--before PATH`, another build of the agent (e.g. main's, built with
 * `bun build.ts --outdir`) scans the same state dir in the same alternation:
 * a before → after on the same machine load.
 *
 *   bun bench/scan-startup.ts [--runs 9] [--online] [--bare] [--before DIR/agent] [--json]
 *
 * Needs dist/agent and dist/contentctl (`bun build.ts`) and clamscan.
 */
import "reflect-metadata";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { initKeys } from "../core/crypto/keys.ts";
import { distExecutables, freshCopies } from "./dist.ts";
import { runSampled, type SampledRun } from "./proc-tree.ts";
import { realisticSignatureSet } from "./realistic-sigs.ts";
import { updateOnceArgv } from "./update-once.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "9" },
    online: { type: "boolean", default: false },
    before: { type: "string" },
    bare: { type: "boolean", default: false },
    json: { type: "boolean" },
  },
});
const RUNS = Number(values.runs);
const { root: ROOT, agent, contentctl } = distExecutables("scan-startup");
if (!Bun.which("clamscan")) {
  console.error("bench/scan-startup: clamscan not found (apt-get install clamav)");
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), "outpost-bench-startup-scan-"));
// The builds timed, copied afresh so that both start from the same page-cache state (dist.ts).
const [timedAgent, timedBefore] = freshCopies(work, values.before ? [agent, values.before] : [agent]) as [
  string,
  string | undefined,
];
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
const env = { ...process.env, OUTPOST_LOG_QUIET: "1" };
const run = (cmd: string[], ok = [0]) => runSampled(cmd, { env, ok, pss: true });
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const r2 = (x: number) => Math.round(x * 100) / 100;

// ---- the same signature files for both scanners, packed and installed for Outpost (not timed)
const set = realisticSignatureSet(20241, 10_000, 10_000, { hashBacked: 1, prefix: "Startup" });
const db = join(work, "db");
mkdirSync(db);
writeFileSync(join(db, "bench.hsb"), set.hsb);
writeFileSync(join(db, "bench.ndb"), set.ndb);
const keys = join(work, "keys");
await initKeys(keys, { now: new Date(Date.now() - 86400_000) });
const tar = join(work, "DatasetA-1.tar");
const repo = join(work, "repo");
const state = join(work, "state");
await run([contentctl, "datasets", "pack", db, "--version", "1", "--keys", keys, "--out", tar]);
await run([contentctl, "publish", "--repo", repo, "--group", "g", "--keys", keys, tar]);
const install = await run(updateOnceArgv([agent], { repo, group: "g", keys, state }));
if (!/DatasetA\s+1/.test(install.out)) throw new Error(`install did not take: ${install.out}`);

/** The endpoint-like state dir: DatasetA and the examples of other types, installed from the same repo. */
const EXAMPLE_TYPES = [
  "ScheduledQueryPack",
  "TELEMSUP",
  "ESH",
  "EPIPS_data",
  "NTP_OVERRIDES",
  "MLModel",
  "Flags",
  "RemapperRules",
];
const endpointState = join(work, "state-endpoint");
if (!values.bare) {
  for (const type of EXAMPLE_TYPES) {
    const out = join(work, `${type}-1.tar`);
    const src = join(ROOT, "examples", type);
    await run([contentctl, "pack", "--type", type, "--version", "1", "--keys", keys, "--out", out, src]);
    await run([contentctl, "publish", "--repo", repo, "--group", "g", "--keys", keys, out]);
  }
  const all = await run(updateOnceArgv([agent], { repo, group: "g", keys, state: endpointState }));
  for (const type of ["DatasetA", ...EXAMPLE_TYPES])
    if (!new RegExp(`${type}\\s+1`).test(all.out)) throw new Error(`${type} not installed: ${all.out}`);
}

/** A state dir with nothing installed (the floor row). */
const emptyState = join(work, "state-empty");
mkdirSync(emptyState);

// One small clean file (timed), and one carrying a body signature (checked once: both must find it).
const small = join(work, "small.txt");
writeFileSync(small, "#!/bin/sh\n# a small shell script, nothing to find here\n".repeat(80));
const infected = join(work, "infected.bin");
const inst = set.body[3]!.instance;
writeFileSync(infected, Buffer.concat([Buffer.alloc(2048, 0x20), inst, Buffer.alloc(2048, 0x20)]));

const ours = (file: string, dir = state) => [timedAgent, "scan", "--state", dir, "--json", "--quiet", file];
const theirs = (file: string) => ["clamscan", "--no-summary", "-d", db, file];

const oursFound = JSON.parse((await run(ours(infected), [1])).out) as {
  detections: { name: string }[];
};
const theirsFound = (await run(theirs(infected), [1])).out;
const sameDetection =
  oursFound.detections.length === 1 &&
  theirsFound.includes(`${oursFound.detections[0]!.name}.UNOFFICIAL FOUND`);
if (!sameDetection)
  throw new Error(`detections differ: ${JSON.stringify(oursFound.detections)} vs ${theirsFound}`);

interface Summary {
  cpuMs: number;
  wallMs: number;
  pssMb: number;
  rssMb: number;
}
const summary = (rs: SampledRun[]): Summary => ({
  cpuMs: Math.round(median(rs.map((r) => r.cpuMs))),
  wallMs: Math.round(median(rs.map((r) => r.wallMs))),
  pssMb: median(rs.map((r) => r.treePssMb ?? 0)),
  rssMb: median(rs.map((r) => r.treeRssMb)),
});

/** Alternates the commands RUNS times after one warm-up each (page cache). */
async function alternate(cmds: Record<string, { cmd: string[]; ok?: number[] }>) {
  const runs: Record<string, SampledRun[]> = {};
  for (const [name, c] of Object.entries(cmds)) {
    await run(c.cmd, c.ok);
    runs[name] = [];
  }
  for (let i = 0; i < RUNS; i++)
    for (const [name, c] of Object.entries(cmds)) runs[name]!.push(await run(c.cmd, c.ok));
  return Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, summary(v)]));
}

const before = timedBefore;
const offline = await alternate({
  outpost: { cmd: ours(small) },
  ...(before ? { before: { cmd: [before, ...ours(small).slice(1)] } } : {}),
  clamscan: { cmd: theirs(small) },
  // Exit 3: the file could not be scanned (HND_NOT_LOADED), as expected with no content.
  cliFloor: { cmd: ours(small, emptyState), ok: [3] },
  agentVersion: { cmd: [timedAgent, "--version"] },
  bunEmpty: { cmd: [process.execPath, "-e", "0"] },
  ...(values.bare
    ? {}
    : {
        endpoint: { cmd: ours(small, endpointState) },
        ...(before ? { endpointBefore: { cmd: [before, ...ours(small, endpointState).slice(1)] } } : {}),
      }),
});
const ratio = (a: Summary, b: Summary) => ({
  cpu: r2(a.cpuMs / b.cpuMs),
  wall: r2(a.wallMs / b.wallMs),
  pss: r2(a.pssMb / b.pssMb),
  rss: r2(a.rssMb / b.rssMb),
});

let online:
  | { outpost: Summary; before?: Summary; clamscan: Summary; ratio: ReturnType<typeof ratio>; path: string }
  | undefined;
if (values.online) online = await measureOnline();

async function measureOnline() {
  const daemon = Bun.spawn([agent, "run", "--state", state, "--port", "0"], {
    env,
    stdout: "ignore",
    stderr: "ignore",
  });
  try {
    // Ready when the agent advertises its control plane (a scan before that would take the state
    // lock offline and make `agent run` fail to start).
    const deadline = Date.now() + 60_000;
    while (!existsSync(join(state, "control.json")) || !existsSync(join(state, "control.sock"))) {
      if (daemon.exitCode !== null) throw new Error(`agent run exited ${daemon.exitCode}`);
      if (Date.now() > deadline) throw new Error("agent run did not advertise its control plane within 60 s");
      await Bun.sleep(100); // polling for readiness, bounded by the deadline above
    }
    const first = JSON.parse((await runSampled(ours(small), { env })).out) as { via?: string };
    const path = first.via ?? "";
    if (path !== "agent") throw new Error(`with agent run up, the scan went ${path || "an unknown way"}`);
    const m = await alternate({
      outpost: { cmd: ours(small) },
      ...(before ? { before: { cmd: [before, ...ours(small).slice(1)] } } : {}),
      clamscan: { cmd: theirs(small) },
    });
    return {
      outpost: m.outpost!,
      ...(m.before ? { before: m.before } : {}),
      clamscan: m.clamscan!,
      ratio: ratio(m.outpost!, m.clamscan!),
      path,
    };
  } finally {
    daemon.kill("SIGTERM");
    await daemon.exited;
  }
}

const load = (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");
const result = {
  runs: RUNS,
  signatures: { hash: 10_000, body: 10_000, machineCodeShare: 0.4 },
  loadAverage: load,
  sameDetection,
  offline: {
    ...offline,
    ratio: ratio(offline.outpost!, offline.clamscan!),
    ...(offline.endpoint ? { endpointRatio: ratio(offline.endpoint, offline.clamscan!) } : {}),
  },
  ...(online ? { online } : {}),
};
if (values.json) console.log(JSON.stringify(result));
else {
  const line = (name: string, s: Summary) =>
    `  ${name.padEnd(22)} ${String(s.cpuMs).padStart(5)} ms CPU ${String(s.wallMs).padStart(6)} ms wall ${String(s.pssMb).padStart(5)} MB PSS ${String(s.rssMb).padStart(5)} MB RSS`;
  console.log(
    `scan one small file, start-up included: 20k signatures (10k hash + 10k body, 40 % machine code); median of ${RUNS}; load ${load}`,
  );
  console.log(line("dist/agent scan", offline.outpost!));
  if (offline.before) console.log(line("--before agent scan", offline.before));
  if (offline.endpoint) {
    console.log(line("  + 8 example types", offline.endpoint));
    if (offline.endpointBefore) console.log(line("  --before, same", offline.endpointBefore));
  }
  console.log(line("clamscan -d", offline.clamscan!));
  console.log(line("  nothing installed", offline.cliFloor!));
  console.log(line("dist/agent --version", offline.agentVersion!));
  console.log(line("bun -e 0", offline.bunEmpty!));
  const r = result.offline.ratio;
  console.log(
    `  ratio to clamscan      CPU ${r.cpu}×, wall ${r.wall}×, PSS ${r.pss}×, RSS ${r.rss}× (goal ≤ 1×)`,
  );
  const e = result.offline.endpointRatio;
  if (e)
    console.log(
      `  + 8 example types      CPU ${e.cpu}×, wall ${e.wall}×, PSS ${e.pss}×, RSS ${e.rss}× clamscan`,
    );
  if (online) {
    console.log("  with `agent run` on the same state dir (the scan goes to its scanner host):");
    console.log(line("dist/agent scan", online.outpost));
    if (online.before) console.log(line("--before agent scan", online.before));
    console.log(line("clamscan -d", online.clamscan));
    console.log(
      `  ratio to clamscan      CPU ${online.ratio.cpu}×, wall ${online.ratio.wall}×, PSS ${online.ratio.pss}×, RSS ${online.ratio.rss}×`,
    );
  }
}
