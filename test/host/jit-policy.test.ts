/**
 * The agent executable starts with a one-shot JIT policy (core/jsc-options.ts,
 * ONE_SHOT_JIT_POLICY, baked in by build.ts); the supervisor, the hosts and the
 * query worker switch back to 1 as their first step. That rests on three
 * properties of the runtime, checked here on an executable compiled the same
 * way: the baked policy holds from the first instruction, it multiplies the
 * thresholds AGENT_RUNTIME_ENV sets (so a long-lived process that kept it would be
 * N times slower to tier up than tuned), and Worker threads start at 1.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TARGETS } from "../../build.ts";
import {
  AGENT_RUNTIME_ENV,
  jitPolicyFor,
  jitPolicyForWork,
  ONE_SHOT_JIT_POLICY,
  ONE_SHOT_SUPERVISOR_ENV,
} from "../../core/jsc-options.ts";

// How many calls of a small function it takes to reach the optimizing tier, compiled in the
// foreground (useConcurrentJIT=0) so that the count does not depend on a JIT thread's timing.
const PROBE = `
import { numberOfDFGCompiles } from "bun:jsc";
export function callsToOptimize(seed) {
  const f = new Function("x", "let s = " + seed + "; for (let i = 0; i < 10; i++) s += i * x; return s;");
  let n = 0;
  for (; n < 5_000_000; n++) { f(n); if (numberOfDFGCompiles(f) > 0) break; }
  return n;
}
`;
const MAIN = `
import { callsToOptimize } from "./probe.ts";
const out = { start: callsToOptimize(1) };
Bun.unsafe.setJITPolicy(1);
out.reset = callsToOptimize(2);
const w = new Worker(new URL("./worker.ts", import.meta.url).href);
w.onmessage = (e) => { out.worker = e.data; console.log(JSON.stringify(out)); process.exit(0); };
`;
const WORKER = `
import { callsToOptimize } from "./probe.ts";
postMessage(callsToOptimize(3));
`;

let dir = "";
let exe = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "outpost-jit-policy-"));
  writeFileSync(join(dir, "probe.ts"), PROBE);
  writeFileSync(join(dir, "main.ts"), MAIN);
  writeFileSync(join(dir, "worker.ts"), WORKER);
  exe = join(dir, "probe");
  const b = Bun.spawnSync(
    [
      process.execPath,
      "build",
      "--compile",
      `--compile-jit-policy=${ONE_SHOT_JIT_POLICY}`,
      join(dir, "main.ts"),
      join(dir, "worker.ts"),
      "--outfile",
      exe,
    ],
    { stderr: "pipe", stdout: "pipe" },
  );
  if (b.exitCode !== 0) throw new Error(`bun build --compile: ${b.stderr}`);
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function probe(env: Record<string, string>): { start: number; reset: number; worker: number } {
  const r = Bun.spawnSync([exe], {
    env: { PATH: process.env.PATH ?? "", BUN_JSC_useConcurrentJIT: "0", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  if (r.exitCode !== 0) throw new Error(`probe exited ${r.exitCode}: ${r.stderr}`);
  return JSON.parse(r.stdout.toString());
}

describe("the executable's one-shot JIT policy", () => {
  test("holds from the first instruction, multiplies AGENT_RUNTIME_ENV's thresholds, and setJITPolicy(1) undoes it", () => {
    const plain = probe({});
    const tuned = probe({ ...AGENT_RUNTIME_ENV });
    // One-shot: N times the calls of the normal policy before the optimizing tier.
    expect(plain.start).toBeGreaterThan(plain.reset * (ONE_SHOT_JIT_POLICY / 2));
    // Long-lived with AGENT_RUNTIME_ENV and the policy kept: both multiply — hence the switch back to 1.
    expect(tuned.start).toBeGreaterThan(tuned.reset * (ONE_SHOT_JIT_POLICY / 2));
    expect(tuned.reset).toBeGreaterThan(plain.reset * 5);
  }, 30_000);

  test("Worker threads start at the normal policy (the sensor reader needs no switch)", () => {
    const plain = probe({});
    expect(plain.worker).toBeLessThan(plain.start / (ONE_SHOT_JIT_POLICY / 2));
    expect(Math.abs(plain.worker - plain.reset)).toBeLessThanOrEqual(plain.reset);
  }, 30_000);
});

describe("which processes switch back to 1 (bin/agent.ts)", () => {
  test("the supervisor, a host and the query worker do; one-shot commands and --help keep the policy", () => {
    expect(jitPolicyFor(["run", "--config", "/etc/outpost/agent.json"], {})).toBe(1);
    expect(jitPolicyFor(["host", "--group", "scanner", "--max-inbound", "1"], {})).toBe(1);
    expect(jitPolicyFor(["query-worker"], {})).toBe(1);
    for (const oneShot of [
      ["scan", "/tmp/x"],
      ["status", "--json"],
      ["--version"],
      ["run", "--help"],
      ["host", "-h"],
    ])
      expect(jitPolicyFor(oneShot, {})).toBeUndefined();
  });

  test("a host a one-shot command started keeps the policy until its first call, then switches to 1 once", () => {
    const oneShot = { [ONE_SHOT_SUPERVISOR_ENV]: "1" };
    expect(jitPolicyFor(["host", "--group", "scanner"], oneShot)).toBeUndefined();
    // `agent run`'s hosts switched at start: their calls change nothing.
    expect(jitPolicyForWork({})).toBeUndefined();
    expect(jitPolicyForWork(oneShot)).toBe(1);
    expect(jitPolicyForWork(oneShot)).toBeUndefined();
  });

  test("build.ts bakes the policy into the agent only (contentctl's serve and fleet commands stay up)", () => {
    expect(TARGETS.find((t) => t.name === "agent")?.jitPolicy).toBe(ONE_SHOT_JIT_POLICY);
    expect(TARGETS.find((t) => t.name === "contentctl")?.jitPolicy).toBe(1);
  });
});
