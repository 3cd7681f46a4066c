/**
 * Crash consistency of a whole install, end to end: the real agent CLI
 * (`bin/agent.ts update --once`) upgrades Hmpa_data v1 → v2 in a child
 * process that dies by SIGKILL — (a) at every durable step of the install
 * (OUTPOST_CRASH_POINT, which the store checks between syscalls), and
 * (b) at random moments from outside. After every death:
 *
 *   - a fresh ContentStore on the state dir reports exactly v1 or v2 (by
 *     version and package digest; v1 before the commit point, v2 from it),
 *     and every installed file matches its manifest;
 *   - an agent starts on that state and serves that version's allowlist;
 *   - a following cycle converges to v2: in (a) a normal `agent update --once`
 *     child; in (b), to keep the file within a minute on two cores, the
 *     in-process agent that just loaded runs the cycle (`update --once` is
 *     exactly that: start, one cycle, stop).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { UpdateCycleReport } from "../core/agent/api.ts";
import { Agent } from "../core/agent/runtime.ts";
import { parseConfig, statePaths } from "../core/config.ts";
import { readRepoIndex } from "../core/repo/publish.ts";
import { ContentStore } from "../core/store/store.ts";
import { buildAllowlistFromText } from "../handlers/Hmpa_data/build.ts";
import { defaultRegistry } from "../handlers/index.ts";
import { compiledBinaries } from "./fixtures/compiled.ts";
import { makeVendor, TEST_GROUP, type Vendor } from "./fixtures/vendor.ts";

const TYPE = "Hmpa_data";
/** The compiled agent (built once per source tree, test/fixtures/compiled.ts): what runs on endpoints, and it starts in ~30 ms
 * where the source tree needs ~0.5 s to import every handler, which matters over 80+ children. */
let agentCommand: string[] = [process.execPath, resolve(import.meta.dir, "../bin/agent.ts")];
/** Children run side by side; each waits on spawn and fsync part of its life, so three share two cores well. */
const PARALLEL = 3;
const RANDOM_RUNS = 50;
const RANDOM_SEED = 0x0c7a5e;
/**
 * These tests wait on nothing but work (80+ child agents); they need ~40 s on a quiet two-core
 * box and several times that on a loaded one (a second copy of the suite alongside), where a
 * 60 s ceiling failed them. The ceiling only catches a hang.
 */
const LOADED_BOX_MS = 300_000;

let base: string;
let vendor: Vendor;
/** A state dir with v1 installed by the CLI; every run starts from a copy of it. */
let template: string;
const published = new Map<number, string>(); // version → package SHA-384
let copies = 0;

interface CrashPointLine {
  n: number;
  label: string;
  /** Milliseconds after spawn when the parent read the line. */
  atMs: number;
}

interface Run {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  points: CrashPointLine[];
  stderr: string;
  ms: number;
}

/**
 * `agent update --once` on `state`; resolves on process exit. `kill` SIGKILLs it from outside
 * `ms` after it reports crash point `afterPoint` (needs OUTPOST_CRASH_TRACE=1), or after spawn.
 */
async function runAgent(
  state: string,
  env: Record<string, string> = {},
  kill?: { ms: number; afterPoint?: number },
): Promise<Run> {
  const started = performance.now();
  const proc = Bun.spawn(
    [
      ...agentCommand,
      "update",
      "--once",
      "--json",
      "--repo",
      vendor.repo,
      "--group",
      TEST_GROUP,
      "--state",
      state,
      "--trust",
      vendor.trustPath,
    ],
    { env: { ...process.env, OUTPOST_LOG_QUIET: "1", ...env }, stdout: "pipe", stderr: "pipe" },
  );
  let killer: ReturnType<typeof setTimeout> | undefined;
  const armKill = () => {
    killer ??= setTimeout(() => proc.kill("SIGKILL"), kill?.ms);
  };
  if (kill && kill.afterPoint === undefined) armKill();
  const points: CrashPointLine[] = [];
  let stderr = "";
  const readStderr = (async () => {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of proc.stderr) {
      const atMs = performance.now() - started;
      const text = decoder.decode(chunk, { stream: true });
      stderr += text;
      pending += text;
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        const m = /^crashpoint (\d+) (.*)$/.exec(pending.slice(0, nl));
        if (m) {
          points.push({ n: Number(m[1]), label: m[2]!, atMs });
          if (kill?.afterPoint === Number(m[1])) armKill();
        }
        pending = pending.slice(nl + 1);
      }
    }
  })();
  const stdout = new Response(proc.stdout).text();
  await proc.exited;
  clearTimeout(killer);
  await readStderr;
  return {
    exitCode: proc.exitCode,
    signal: proc.signalCode === null ? null : String(proc.signalCode),
    stdout: await stdout,
    points,
    stderr,
    ms: performance.now() - started,
  };
}

function freshState(): string {
  const state = join(base, `state-${++copies}`);
  cpSync(template, state, { recursive: true });
  return state;
}

function allowlist(version: number): Uint8Array {
  return buildAllowlistFromText(`# Hmpa_data v${version}\nonly-in-v${version}\nshared-thumbprint\n`);
}

/** The store after a crash: exactly one of the published versions, byte-perfect. Returns its version. */
function checkStore(state: string, where: string): number {
  const store = new ContentStore(state);
  store.open();
  const current = store.installed(TYPE);
  if (!current) throw new Error(`${where}: nothing installed`);
  expect([current.version, current.sha384], where).toEqual([
    current.version,
    published.get(current.version)!,
  ]);
  expect([1, 2], where).toContain(current.version);
  const check = store.verifyInstalled(TYPE, current);
  expect(check?.problems, where).toEqual([]);
  expect(check?.ok, where).toBe(true);
  // The rollback target, when there is one, must be usable too.
  const lkg = store.lkg(TYPE);
  if (lkg) {
    expect(lkg.version, where).toBe(1);
    expect(store.verifyInstalled(TYPE, lkg)?.ok, where).toBe(true);
  }
  expect(store.badVersions(TYPE), where).toEqual([]);
  return current.version;
}

/**
 * An agent starts on the crashed state and serves the version the store reports. With
 * `converge`, that agent then runs one cycle — what `update --once` does in its process — and
 * must end on v2.
 */
async function checkAgentLoads(
  state: string,
  version: number,
  where: string,
  opts: { converge?: boolean } = {},
): Promise<void> {
  const config = parseConfig({
    stateDir: state,
    update: { repo: vendor.repo, group: TEST_GROUP, trust: vendor.trustPath, enabled: false },
    // This file is about the store; host processes are covered by test/host/ (and cost a spawn per run).
    hosts: { isolation: "in-process" },
  });
  const agent = new Agent({ config, registry: defaultRegistry() });
  await agent.start();
  try {
    const info = agent.content().find((c) => c.type === TYPE);
    expect([info?.version, info?.handlerState, info?.badVersions], where).toEqual([version, "loaded", []]);
    expect(await serves(agent, version), where).toBe(true);
    if (opts.converge) {
      checkReport(await agent.update(), where);
      expect(await serves(agent, 2), `${where}, after converging`).toBe(true);
    }
  } finally {
    await agent.stop();
  }
  if (opts.converge) expect(checkStore(state, `${where}, after converging`)).toBe(2);
}

async function serves(agent: Agent, version: number): Promise<boolean> {
  const hit = (await agent.call(TYPE, "check", { thumbprint: `only-in-v${version}` })) as {
    allowed: boolean;
  };
  return hit.allowed;
}

function checkReport(report: UpdateCycleReport, where: string): void {
  expect(report.ok, where).toBe(true);
  expect(report.rejected, where).toEqual([]);
  if (report.installed.length > 0) {
    expect(report.installed, where).toEqual([{ type: TYPE, version: 2, previousVersion: 1 }]);
  } else expect(report.unchanged, where).toEqual([TYPE]);
}

/** A normal `agent update --once` run afterwards ends on v2, installing it or finding it already there. */
async function checkConverges(state: string, where: string): Promise<void> {
  const run = await runAgent(state);
  expect([run.exitCode, run.signal], `${where}: ${run.stderr}`).toEqual([0, null]);
  checkReport(JSON.parse(run.stdout) as UpdateCycleReport, where);
  expect(checkStore(state, `${where}, after converging`)).toBe(2);
}

/** Runs `jobs` with at most PARALLEL at a time. */
async function pool<T>(items: T[], job: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const worker = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await job(item);
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
}

/** mulberry32: a tiny seeded PRNG, so a failing random run can be replayed. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A traced, uninterrupted v1 → v2 install: how many crash points it has and their labels. */
let trace: Run;
/**
 * When things happen in an install, in ms after the store is opened (crash point 1), averaged
 * over PARALLEL traced runs made side by side — as loaded as the random runs will be.
 */
let timing: { staging: number; last: number; exit: number };

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), "outpost-crash-e2e-"));
  agentCommand = [(await compiledBinaries()).agent];
  vendor = await makeVendor();
  await vendor.release(TYPE, 1, { "allowlist.bin": allowlist(1) });
  template = join(base, "template");
  const first = await runAgent(template);
  expect([first.exitCode, first.signal], first.stderr).toEqual([0, null]);
  expect((JSON.parse(first.stdout) as UpdateCycleReport).installed).toEqual([
    { type: TYPE, version: 1, previousVersion: null },
  ]);
  await vendor.release(TYPE, 2, { "allowlist.bin": allowlist(2) });
  const index = readRepoIndex(vendor.repo, TEST_GROUP);
  published.set(2, index!.content[TYPE]!.sha384);
  published.set(1, new ContentStore(template).installed(TYPE)!.sha384);

  const traces = await Promise.all(
    Array.from({ length: PARALLEL }, () => runAgent(freshState(), { OUTPOST_CRASH_TRACE: "1" })),
  );
  for (const t of traces) {
    expect([t.exitCode, t.signal], t.stderr).toEqual([0, null]);
    expect(t.points.map((p) => p.label.split(" ")[0])).toEqual(
      traces[0]!.points.map((p) => p.label.split(" ")[0]),
    );
  }
  trace = traces[0]!;
  const mean = (f: (t: Run) => number) =>
    traces.reduce((sum, t) => sum + f(t) - t.points[0]!.atMs, 0) / traces.length;
  timing = {
    staging: mean((t) => t.points.find((p) => p.label.startsWith("mkdir stage-"))!.atMs),
    last: mean((t) => t.points.at(-1)!.atMs),
    exit: mean((t) => t.ms),
  };
}, LOADED_BOX_MS / 2);

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
  vendor?.cleanup();
});

describe("SIGKILL during a v1 → v2 install (real agent CLI)", () => {
  test(
    "(a) at every durable step: v1 before the commit point, v2 from it, always whole; then converges",
    async () => {
      const points = trace.points;
      expect(points.map((p) => p.n)).toEqual(points.map((_, i) => i + 1));
      // Staging, both pointer writes and their fsyncs are all in the trace.
      expect(points.length).toBeGreaterThan(20);
      const commit = points.findIndex((p) => p.label === "rename -> current.json") + 1;
      expect(commit).toBeGreaterThan(1);

      await pool(
        points.map((p) => p.n),
        async (n) => {
          const where = `crash point ${n} (${points[n - 1]!.label})`;
          const state = freshState();
          const run = await runAgent(state, { OUTPOST_CRASH_POINT: String(n) });
          expect(run.signal, `${where}: ${run.stderr}`).toBe("SIGKILL");
          expect(run.points.at(-1)?.n, where).toBe(n);
          const version = checkStore(state, where);
          expect(version, where).toBe(n < commit ? 1 : 2);
          await checkAgentLoads(state, version, where);
          await checkConverges(state, where);
        },
      );
    },
    LOADED_BOX_MS,
  );

  test(
    `(b) ${RANDOM_RUNS} SIGKILLs from outside at random moments (seed ${RANDOM_SEED}); same invariants`,
    async () => {
      // Each kill is timed from the moment the child reports opening the store (crash point 1),
      // so start-up jitter does not decide where it lands. Half are spread from there to past the
      // end of the run; the other half aim at the short stretch of durable steps (staging to
      // commit), which a uniform spread would rarely hit.
      const random = mulberry32(RANDOM_SEED);
      // Delays are drawn as positions within the run and turned into milliseconds when each child
      // starts, from timings that every run which outlives its kill refines: children run faster on
      // a quiet machine than during calibration, and a kill after exit proves nothing.
      let drawn = 0;
      const draw = (count: number) =>
        Array.from({ length: count }, () => {
          const i = drawn++;
          return { position: i % 2 === 0 ? { spread: random() * 1.1 } : { aimed: random() }, i };
        });
      const delayFor = (p: { spread?: number; aimed?: number }) =>
        p.spread !== undefined
          ? p.spread * timing.exit
          : timing.staging - 30 + (p.aimed ?? 0) * (timing.last - timing.staging + 40);
      const learnFrom = (run: Run) => {
        const first = run.points[0]?.atMs;
        const staging = run.points.find((p) => p.label.startsWith("mkdir stage-"))?.atMs;
        const last = run.points.at(-1)?.atMs;
        if (first === undefined || staging === undefined || last === undefined) return;
        timing = {
          staging: Math.min(timing.staging, staging - first),
          last: Math.min(timing.last, last - first),
          exit: Math.min(timing.exit, run.ms - first),
        };
      };
      const outcomes = { killed: 0, finished: 0 };

      const killAt = async ({ position, i }: ReturnType<typeof draw>[number]) => {
        const ms = delayFor(position);
        const state = freshState();
        // Traced, so a failure says how far the install got before the kill.
        const run = await runAgent(
          state,
          { OUTPOST_CRASH_TRACE: "1" },
          { ms: Math.max(0, ms), afterPoint: 1 },
        );
        const reached = run.points.at(-1);
        const where = `random run ${i} (kill after ${ms.toFixed(0)} ms, last step ${reached ? `${reached.n} ${reached.label}` : "none"})`;
        if (run.signal === "SIGKILL") outcomes.killed++;
        else {
          // The kill came after the process had already finished: a complete, successful run.
          expect([run.exitCode, run.signal], `${where}: ${run.stderr}`).toEqual([0, null]);
          outcomes.finished++;
          learnFrom(run);
        }
        const version = checkStore(state, where);
        await checkAgentLoads(state, version, where, { converge: true });
      };
      await pool(draw(RANDOM_RUNS), killAt);
      // On a loaded box this process may read a child's first crash point late, and the kill lands
      // after the child exited: more runs, with the timings the finished ones refined, until most
      // kills have landed while an agent was running (or this test would prove little) — at most
      // twice the planned runs.
      while (outcomes.killed <= RANDOM_RUNS / 2 && drawn < 2 * RANDOM_RUNS) {
        await pool(
          draw(Math.min(Math.floor(RANDOM_RUNS / 2) + 1 - outcomes.killed, 2 * RANDOM_RUNS - drawn)),
          killAt,
        );
      }
      expect(outcomes.killed + outcomes.finished).toBe(drawn);
      expect(outcomes.killed).toBeGreaterThan(RANDOM_RUNS / 2);
    },
    LOADED_BOX_MS,
  );
});

describe("after a power loss", () => {
  // After a power loss the pid in a leftover agent.lock often belongs to another process; the lock
  // records start time and boot id (core/agent/lock.ts), so such a lock is recognised as stale.
  test("a lock left by a killed agent whose pid now belongs to another process does not block start", async () => {
    const state = freshState();
    const unrelated = Bun.spawn(["sleep", "60"], { stdout: "ignore", stderr: "ignore" });
    try {
      writeFileSync(statePaths(state).lock, `${unrelated.pid}\n`);
      await checkAgentLoads(state, 1, "stale lock with a recycled pid");
    } finally {
      unrelated.kill("SIGKILL");
      await unrelated.exited;
    }
  });
});
