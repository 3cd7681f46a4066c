/**
 * The agent's memory and idle CPU with every content type installed (issue
 * 21, Footprint: total PSS ≤ 100 MiB with every group running, idle CPU
 * ≤ 0.5 % of one core), against a bare compiled Bun process in the same run.
 *
 * The agent is the one that ships (dist/agent, built first unless
 * --no-build), set up by scripts/demo.ts in a directory of its own: every
 * example content type signed, published, installed and exercised once
 * (a scan, a reputation lookup, Behavior replay, a scheduled query, a
 * self-repair dry run…). Once the process tree has gone quiet, its CPU is
 * read over `--seconds`, then PSS per process from /proc/PID/smaps,
 * split into the executable's pages, anonymous memory (JS heap, malloc)
 * and other file mappings (libraries, mmapped data). The total the goal is
 * held to is the median of the tree's PSS sampled every 4 s through the
 * window: a single snapshot lands anywhere in the agent's 10 s cycle of
 * scheduled queries (the query host and its worker map 5–10 MiB more of
 * the executable right after a run), and read 1–10 MiB apart for the same
 * build.
 *
 *   running: hosts.idleStop off — every group's host stays up (the goal's case).
 *   stopped: hosts.idleStop after 5 s — the groups that hold nothing hot stop,
 *            as they do after the default 300 s; the first call to one of them
 *            afterwards (RepairKit's) is timed against a call to a running
 *            host (Hmpa_data's), CLI start-up included.
 *
 * The agent runs as the systemd unit runs it (BUN_GC_TIMER_DISABLE=1,
 * core/install/unit.ts). `--baseline DIR` runs every mode a second time on
 * the binaries in DIR (e.g. `git worktree add /tmp/base main && cd /tmp/base
 * && bun build.ts --outdir /tmp/base-dist`), first, in the same run.
 *
 * `--settle S` waits S seconds more once the tree first looks quiet: the
 * first minutes after start still hold one-off work (a host's first idle
 * collection, the repair host's post-start round), which a window that
 * starts at once counts as idle.
 *
 *   bun bench/footprint.ts [--seconds 60] [--settle 0] [--modes running,stopped] [--baseline DIR] [--no-build] [--json]
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { argvOf, cpuTicks, type PssBreakdown, processTree, pssOf, TreeCpuMeter } from "./proc-memory.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    settle: { type: "string", default: "0" },
    modes: { type: "string", default: "running,stopped" },
    "no-build": { type: "boolean" },
    baseline: { type: "string" },
    json: { type: "boolean" },
  },
});
const SECONDS = Number(values.seconds);
const ROOT = join(import.meta.dir, "..");
const WORK = join(ROOT, ".tmp", "footprint");
const DIST = join(ROOT, "dist");
const TICK_HZ = 100;
/** How often the idle window's per-thread CPU counts are read. */
const CPU_SAMPLE_MS = 2000;
/** Every how many CPU samples the tree's PSS is read too (every 4 s). */
const PSS_EVERY = 2;
const MiB = (kib: number) => Math.round(kib / 102.4) / 10;

async function until<T>(
  what: string,
  deadlineMs: number,
  probe: () => T | undefined | Promise<T | undefined>,
) {
  const end = performance.now() + deadlineMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() > end) throw new Error(`bench/footprint: timed out waiting for ${what}`);
    await Bun.sleep(200);
  }
}

/**
 * Waits until the tree uses under `maxPercent` of a core over `windowS` seconds: on a shared machine
 * the sensors see other people's processes, so "quiet" cannot mean no CPU at all. Gives up after
 * 240 s and says so (the figures are then taken from a tree that never settled).
 */
async function quiet(root: number, windowS = 10, maxPercent = 2): Promise<boolean> {
  const samples: number[] = [];
  const end = performance.now() + 240_000;
  while (performance.now() < end) {
    samples.push(processTree(root).reduce((n, p) => n + cpuTicks(p), 0));
    if (samples.length > windowS) {
      const used = samples.at(-1)! - samples.at(-1 - windowS)!;
      if (used <= (maxPercent / 100) * TICK_HZ * windowS) return true;
    }
    await Bun.sleep(1000);
  }
  console.error("bench/footprint: the agent never went quiet (240 s); measuring anyway");
  return false;
}

function label(pid: number, supervisor: number): string {
  const argv = argvOf(pid);
  const g = argv.indexOf("--group");
  if (argv.includes("host") && g >= 0) return `host ${argv[g + 1]}`;
  if (pid === supervisor) return "supervisor";
  return `${basename(argv[0] ?? "?")} ${argv[1] ?? ""}`.trim();
}

interface Row extends PssBreakdown {
  name: string;
  /** CPU time in the idle window, ms (per-thread scheduler counts, TreeCpuMeter). */
  cpuMs?: number;
}

/** A compiled `setInterval` and nothing else: the runtime's own floor, alone on the machine. */
async function bareBaseline(): Promise<Row> {
  const src = join(WORK, "bare.ts");
  const exe = join(WORK, "bare");
  writeFileSync(src, "setInterval(() => {}, 1 << 30);\n");
  const b = Bun.spawnSync([process.execPath, "build", "--compile", src, "--outfile", exe], {
    stdout: "ignore",
  });
  if (b.exitCode !== 0) throw new Error(`bench/footprint: bun build --compile failed: ${b.stderr}`);
  const p = Bun.spawn([exe], { stdout: "ignore", stderr: "inherit" });
  await quiet(p.pid, 2, 0.5);
  const m = pssOf(p.pid);
  p.kill();
  await p.exited;
  if (!m) throw new Error("bench/footprint: the bare process vanished");
  return { name: "bare compiled bun", ...m };
}

interface ModeResult {
  /** "current", or "baseline" (--baseline). */
  build: string;
  mode: string;
  settled: boolean;
  rows: Row[];
  /** At the end of the window, per process (the rows). */
  total: PssBreakdown;
  /**
   * The tree's PSS sampled every PSS_EVERY CPU samples (4 s) through the window: one snapshot lands
   * anywhere in the agent's 10 s cycle of scheduled queries, and gave totals 1–10 MiB apart for the
   * same build.
   */
  pssSamples: { median: number; min: number; max: number; n: number };
  /** From the scheduler's per-thread nanoseconds (exact), not from ticks. */
  cpuPercentOfCore: number;
  cpuMs: number;
  /** utime + stime of the tree in ticks, as before: off by up to one tick per process. */
  ticks: number;
  wallSeconds: number;
  firstCallAfterStopMs?: number;
  callToRunningHostMs?: number;
}

async function runMode(build: string, bin: string, mode: string): Promise<ModeResult> {
  const dir = join(WORK, `demo-${build}-${mode}`);
  const agent = join(bin, "agent");
  rmSync(dir, { recursive: true, force: true });
  const idleStop = mode === "stopped" ? { afterSeconds: 5 } : { afterSeconds: 0 };
  const demo = Bun.spawn([process.execPath, join(ROOT, "scripts/demo.ts")], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "inherit",
    env: {
      ...process.env,
      BUN_GC_TIMER_DISABLE: "1",
      OUTPOST_DEMO_BIN_DIR: bin,
      OUTPOST_DEMO_DIR: dir,
      // Hourly updates, as the agent's default: the demo's 60 s cycle would wake the repair host each minute.
      OUTPOST_DEMO_CONFIG: JSON.stringify({ hosts: { idleStop }, update: { intervalSeconds: 3600 } }),
    },
  });
  try {
    const reader = demo.stdout.getReader();
    let out = "";
    await until("the demo to finish setting up", 900_000, async () => {
      const { value, done } = await reader.read();
      if (done) throw new Error(`bench/footprint: the demo exited before it was ready:\n${out.slice(-3000)}`);
      out += new TextDecoder().decode(value);
      return out.includes("Outpost is running.") ? true : undefined;
    });
    // Keep draining the demo's output (the agent's stdout) so it never blocks on a full pipe.
    void (async () => {
      for (;;) if ((await reader.read()).done) return;
    })();
    const supervisor = await until("the agent process", 10_000, () =>
      processTree(demo.pid).find((p) => {
        const a = argvOf(p);
        return a[0] === agent && a[1] === "run" ? true : undefined;
      }),
    );
    const settled = await quiet(supervisor);
    await Bun.sleep(Number(values.settle) * 1000);
    const first = processTree(supervisor);
    const t0 = new Map(first.map((p) => [p, cpuTicks(p)]));
    const meter = new TreeCpuMeter(() => processTree(supervisor));
    const w0 = performance.now();
    // Sampled every 2 s so that a thread or process that ends in the window keeps most of its time.
    // Reading smaps_rollup walks the target's page tables in this process, not in the agent.
    const pssTotals: number[] = [];
    for (let left = SECONDS * 1000, i = 1; left > 0; left -= CPU_SAMPLE_MS, i++) {
      await Bun.sleep(Math.min(CPU_SAMPLE_MS, left));
      meter.sample();
      if (i % PSS_EVERY === 0) pssTotals.push(treePss(supervisor));
    }
    const wallSeconds = (performance.now() - w0) / 1000;
    const cpu = meter.used();
    const last = processTree(supervisor);
    // A process that ended in the window (an idle stop) counts as it last was; a new one from zero.
    const used = (p: number) => (cpuTicks(p) || (t0.get(p) ?? 0)) - (t0.get(p) ?? 0);
    let ticks = 0;
    for (const p of new Set([...first, ...last])) ticks += used(p);
    const rows: Row[] = [];
    for (const p of last) {
      const m = pssOf(p);
      if (m)
        rows.push({
          name: label(p, supervisor),
          ...m,
          cpuMs: Math.round((cpu.perPid.get(p) ?? 0) / 1e5) / 10,
        });
    }
    const total: PssBreakdown = { pid: 0, pss: 0, binary: 0, anon: 0, files: 0, uss: 0, rss: 0 };
    for (const r of rows)
      for (const k of ["pss", "binary", "anon", "files", "uss", "rss"] as const) total[k] += r[k];
    pssTotals.push(total.pss);
    pssTotals.sort((a, b) => a - b);
    const result: ModeResult = {
      build,
      mode,
      settled,
      rows,
      total,
      pssSamples: {
        median: pssTotals[Math.floor(pssTotals.length / 2)]!,
        min: pssTotals[0]!,
        max: pssTotals.at(-1)!,
        n: pssTotals.length,
      },
      ticks,
      cpuMs: Math.round(cpu.total / 1e6),
      wallSeconds,
      cpuPercentOfCore: Math.round((cpu.total / 1e9 / wallSeconds) * 10000) / 100,
    };
    if (mode === "stopped") Object.assign(result, await firstCallLatency(agent, dir));
    return result;
  } finally {
    demo.kill("SIGINT");
    await demo.exited;
    // Each demo directory holds the agent executable several times over (AgentSoftware): ~700 MiB.
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The PSS of every process in the tree now, KiB. */
function treePss(root: number): number {
  let kib = 0;
  for (const p of processTree(root)) kib += pssOf(p)?.pss ?? 0;
  return kib;
}

/** RepairKit's host (stopped by now) against Hmpa_data's (running), each through `agent handlers call`. */
async function firstCallLatency(agent: string, dir: string) {
  const state = join(dir, "state");
  const time = (args: string[]) => {
    const t = performance.now();
    const r = Bun.spawnSync([agent, ...args, "--state", state], { stdout: "ignore", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`bench/footprint: agent ${args.join(" ")}: ${r.stderr}`);
    return performance.now() - t;
  };
  const hot = time(["handlers", "call", "Hmpa_data", "check", '{"thumbprint":"StackPivot:00"}']);
  const cold = time(["handlers", "call", "RepairKit", "checks", "{}"]);
  return { firstCallAfterStopMs: Math.round(cold), callToRunningHostMs: Math.round(hot) };
}

if (!values["no-build"]) {
  const { build } = await import("../build.ts");
  await build();
}
const builds: [string, string][] = [
  ...(values.baseline ? [["baseline", values.baseline] as [string, string]] : []),
  ["current", DIST],
];
for (const [, bin] of builds) {
  if (!existsSync(join(bin, "agent")) || !existsSync(join(bin, "contentctl"))) {
    console.error(`bench/footprint: ${bin}/agent or contentctl missing; run \`bun build.ts\` first`);
    process.exit(2);
  }
}
mkdirSync(WORK, { recursive: true });
const bare = await bareBaseline();
const results: ModeResult[] = [];
for (const mode of values.modes!.split(","))
  for (const [build, bin] of builds) results.push(await runMode(build, bin, mode));
const load = (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");

if (values.json) {
  console.log(JSON.stringify({ seconds: SECONDS, load, bare, results }));
} else {
  const line = (r: Row) =>
    `  ${r.name.padEnd(20)} ${String(MiB(r.pss)).padStart(6)} ${String(MiB(r.binary)).padStart(7)} ${String(MiB(r.anon)).padStart(6)} ${String(MiB(r.files)).padStart(6)} ${String(MiB(r.uss)).padStart(6)} ${String(MiB(r.rss)).padStart(6)} ${r.cpuMs === undefined ? "" : String(r.cpuMs).padStart(7)}`;
  console.log(`footprint (MiB; load average ${load} at the end)`);
  console.log(
    `  ${"process".padEnd(20)} ${"PSS".padStart(6)} ${"binary".padStart(7)} ${"anon".padStart(6)} ${"files".padStart(6)} ${"USS".padStart(6)} ${"RSS".padStart(6)} ${"CPU ms".padStart(7)}`,
  );
  console.log(line(bare));
  for (const r of results) {
    console.log(
      `\n${r.build}, ${r.mode}: ${r.rows.length} processes${r.settled ? "" : " (never went quiet)"}`,
    );
    for (const row of r.rows) console.log(line(row));
    console.log(line({ name: "total", ...r.total, cpuMs: r.cpuMs }));
    console.log(
      `  total PSS ${MiB(r.pssSamples.median)} MiB, median of ${r.pssSamples.n} samples over the window (${MiB(r.pssSamples.min)}–${MiB(r.pssSamples.max)}; ${MiB(r.total.pss)} at its end, the rows above) = ${Math.round((r.pssSamples.median / bare.pss) * 10) / 10}× a bare compiled Bun process (goal ≤ 100 MiB); ` +
        `idle CPU ${r.cpuPercentOfCore.toFixed(2)} % of one core over ${Math.round(r.wallSeconds)} s (${r.cpuMs} ms; ${r.ticks} ticks by utime + stime; goal ≤ 0.5 %)`,
    );
    const base = results.find((b) => b.build === "baseline" && b.mode === r.mode);
    if (base && r !== base)
      console.log(
        `  against the baseline build, same mode: PSS median ${MiB(base.pssSamples.median)} → ${MiB(r.pssSamples.median)} MiB (${Math.round((r.pssSamples.median / base.pssSamples.median) * 100) / 100}×), ` +
          `${base.rows.length} → ${r.rows.length} processes, idle CPU ${base.cpuPercentOfCore} → ${r.cpuPercentOfCore} %`,
      );
    if (r.firstCallAfterStopMs !== undefined)
      console.log(
        `  first call to a stopped host (agent handlers call RepairKit checks) ${r.firstCallAfterStopMs} ms; to a running one (Hmpa_data) ${r.callToRunningHostMs} ms — CLI start-up included`,
      );
  }
}
