/**
 * The compiled supervisor re-executes itself once with the hosts' JavaScriptCore options
 * (core/jsc-reexec.ts): same PID (systemd tracks it, status reports it), every option in the
 * image's environment and in effect (no allocator scavenger thread), and an operator's own
 * BUN_JSC_* setting left alone.
 */
import { afterEach, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AGENT_RUNTIME_ENV } from "../../core/jsc-options.ts";
import { JSC_REEXEC_MARK } from "../../core/jsc-reexec.ts";
import { compiledBinaries } from "../fixtures/compiled.ts";
import { environOf } from "../fixtures/environ.ts";

let agentBin = "";
const running: ReturnType<typeof Bun.spawn>[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  agentBin = (await compiledBinaries()).agent;
}, 300_000);

afterEach(async () => {
  for (const p of running.splice(0)) {
    p.kill("SIGTERM");
    await p.exited;
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Starts `agent run` with `env` and waits until its control plane answers with that PID. */
async function startAgent(env: Record<string, string>): Promise<number> {
  const work = mkdtempSync(join(tmpdir(), "outpost-supervisor-jsc-"));
  dirs.push(work);
  const state = join(work, "state");
  const config = join(work, "agent.json");
  writeFileSync(
    config,
    JSON.stringify({ stateDir: state, update: { enabled: false, trust: join(work, "none.pem") } }),
  );
  const agent = Bun.spawn([agentBin, "run", "--config", config], {
    cwd: work,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", OUTPOST_LOG_QUIET: "1", ...env },
    stdout: "ignore",
    stderr: "ignore",
  });
  running.push(agent);
  for (;;) {
    if (agent.exitCode !== null) throw new Error(`agent run exited ${agent.exitCode}`);
    const p = Bun.spawnSync([agentBin, "status", "--json", "--state", state]);
    if (
      p.exitCode === 0 &&
      (JSON.parse(p.stdout.toString()) as { agent: { pid: number } }).agent.pid === agent.pid
    )
      return agent.pid;
    await Bun.sleep(100);
  }
}

/** The names of a process's threads (the allocator names its scavenger "mi-scavenger"). */
function threadNames(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`).map((t) => {
    try {
      return readFileSync(`/proc/${pid}/task/${t}/comm`, "utf8").trim();
    } catch {
      return ""; // a thread that ended meanwhile
    }
  });
}

test("the compiled supervisor runs with every host option, in the process it was started as", async () => {
  const pid = await startAgent({ KEPT: "yes" });
  const env = environOf(pid);
  for (const [k, v] of Object.entries(AGENT_RUNTIME_ENV)) expect(env[k]).toBe(v);
  expect(env[JSC_REEXEC_MARK]).toBe("1");
  expect(env.KEPT).toBe("yes");
  // MIMALLOC_SCAVENGER=0 took effect: the allocator started no scavenger thread (the control below has one).
  expect(threadNames(pid)).not.toContain("mi-scavenger");
}, 60_000);

test("an operator's BUN_JSC_* setting: no re-exec, no options added", async () => {
  const pid = await startAgent({ BUN_JSC_useJIT: "1" });
  const env = environOf(pid);
  expect(env.BUN_JSC_useJIT).toBe("1");
  expect(Object.keys(env).filter((k) => k in AGENT_RUNTIME_ENV || k === JSC_REEXEC_MARK)).toEqual([]);
  expect(threadNames(pid)).toContain("mi-scavenger");
}, 60_000);
