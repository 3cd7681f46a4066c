/**
 * The cost of process isolation, measured against running in-process in the
 * same run:
 *
 *  1. IPC round trip of a scan-shaped call (bytes in, small verdict out) for
 *     1 KiB and 1 MiB, through a real sandboxed host process (HostManager,
 *     frames with binary attachments) vs the same handler called in-process
 *     (InProcessHost). Median and p99 per call; ratio of medians.
 *  2. Resident memory at idle with every built-in host group running: the
 *     supervisor plus one host per group, vs the same handlers loaded
 *     in-process. From source, and from dist/agent when it exists (what
 *     ships: bytecode, no transpiler).
 *
 *   bun bench/ipc.ts [--calls 2000] [--json]
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseConfig } from "../core/config.ts";
import { type ContentView, viewOverBytes } from "../core/handler/contract.ts";
import type { HandlerHost } from "../core/handler/host-contract.ts";
import { InProcessHost } from "../core/host/in-process.ts";
import { defaultHostCommand, HostManager } from "../core/host/manager.ts";
import { log } from "../core/log.ts";
import { defaultRegistry } from "../handlers/index.ts";
import { hostTestRegistry } from "../test/host/handlers.ts";

const { values } = parseArgs({
  options: { calls: { type: "string", default: "2000" }, json: { type: "boolean" } },
});
const CALLS = Number(values.calls);
const ROOT = join(import.meta.dir, "..");
const DIST_AGENT = join(ROOT, "dist/agent");
const quiet = log.child({ component: "bench" });
quiet.setStderr(false);

const view: ContentView = viewOverBytes({
  type: "Echo",
  version: 1,
  signingTime: new Date().toISOString(),
  files: [],
  read: () => {
    throw new Error("no files");
  },
  readText: () => {
    throw new Error("no files");
  },
});

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const p99 = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length * 0.99)]!;
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

async function timeCalls(host: HandlerHost, bytes: number, n: number): Promise<number[]> {
  const data = new Uint8Array(bytes).map((_, i) => i & 0xff);
  const out: number[] = [];
  for (let i = 0; i < n + 20; i++) {
    const t = performance.now();
    const r = (await host.call("Echo", "scan", { data })) as { bytes: number };
    const dt = performance.now() - t;
    if (r.bytes !== bytes) throw new Error("echo answered the wrong size");
    if (i >= 20) out.push(dt * 1000);
  }
  return out;
}

const state = mkdtempSync(join(tmpdir(), "outpost-bench-ipc-"));
const config = parseConfig({ stateDir: state, hosts: { heartbeatSeconds: 0 } });
const env = {
  stateDir: state,
  emit() {},
  onContentFailure: async () => null,
};

// 1. Round trips.
const inproc = new InProcessHost(hostTestRegistry(), quiet, {
  workDirFor: (g) => join(state, "inproc", g),
  emit() {},
});
const isolated = new HostManager({ ...env, registry: hostTestRegistry(), log: quiet, config: config.hosts });
for (const h of [inproc, isolated] as HandlerHost[]) {
  await h.validate("Echo", view);
  await h.commit(await h.prepare("Echo", view));
}
const sizes = [
  ["1 KiB", 1024, CALLS],
  ["1 MiB", 1024 * 1024, Math.max(50, Math.floor(CALLS / 10))],
] as const;
const trips: Record<string, { inProcessUs: number; processUs: number; processP99Us: number; ratio: number }> =
  {};
for (const [name, bytes, n] of sizes) {
  const a = await timeCalls(inproc, bytes, n);
  const b = await timeCalls(isolated, bytes, n);
  trips[name] = {
    inProcessUs: round(median(a)),
    processUs: round(median(b)),
    processP99Us: round(p99(b)),
    ratio: round(median(b) / median(a)),
  };
}
const sandbox = isolated.hosts().find((h) => h.group === "echo")?.layers;
await isolated.unloadAll();
await inproc.unloadAll();

// 2. Idle RSS with every built-in group running.
async function idleRss(command?: typeof defaultHostCommand) {
  const registry = defaultRegistry();
  const dir = mkdtempSync(join(tmpdir(), "outpost-bench-rss-"));
  const m = new HostManager({
    ...env,
    stateDir: dir,
    registry,
    log: quiet,
    config: parseConfig({ stateDir: dir, hosts: { heartbeatSeconds: 0 } }).hosts,
    command,
  });
  const groups = [...new Set(registry.types().map((t) => registry.require(t).manifest.group))].sort();
  for (const g of groups) {
    await m.warm(g).catch((e) => {
      throw new Error(
        `${g}: ${e.message}: ${m
          .hosts()
          .find((h) => h.group === g)
          ?.lastCrash?.stderrTail.join("\n")}`,
      );
    });
  }
  Bun.gc(true);
  await Bun.sleep(300); // let each runtime settle after start-up before sampling
  const hosts = m.hosts().map((h) => ({
    group: h.group,
    rssMiB: round((h.usage?.rssBytes ?? 0) / 2 ** 20),
    pssMiB: round(pss(h.pid) / 2 ** 20),
  }));
  await m.unloadAll();
  rmSync(dir, { recursive: true, force: true });
  return hosts;
}
/**
 * Proportional set size: RSS counts the runtime's shared, file-backed pages (the executable)
 * in every process; PSS splits them among the processes sharing them, so sums are honest.
 */
function pss(pid: number | null): number {
  if (!pid) return 0;
  try {
    const m = /^Pss:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

// Baseline: every built-in handler module loaded in this one process (what in-process isolation costs).
Bun.gc(true);
const supervisorMiB = round(process.memoryUsage().rss / 2 ** 20);
const supervisorPssMiB = round(pss(process.pid) / 2 ** 20);
const fromSource = await idleRss();
const compiled = existsSync(DIST_AGENT)
  ? await idleRss((group, limits) => [DIST_AGENT, ...defaultHostCommand(group, limits).slice(2)])
  : null;
rmSync(state, { recursive: true, force: true });

type HostMem = { group: string; rssMiB: number; pssMiB: number };
const sum = (hs: HostMem[], k: "rssMiB" | "pssMiB" = "rssMiB") => round(hs.reduce((s, h) => s + h[k], 0));
const shipped = compiled ?? fromSource;
const result = {
  calls: CALLS,
  roundTrip: trips,
  sandbox,
  idleMemory: {
    inProcess: { rssMiB: supervisorMiB, pssMiB: supervisorPssMiB },
    source: { hosts: fromSource, rssMiB: sum(fromSource), pssMiB: sum(fromSource, "pssMiB") },
    compiled: compiled ? { hosts: compiled, rssMiB: sum(compiled), pssMiB: sum(compiled, "pssMiB") } : null,
    totalRssMiB: round(supervisorMiB + sum(shipped)),
    totalPssMiB: round(supervisorPssMiB + sum(shipped, "pssMiB")),
    rssRatio: round((supervisorMiB + sum(shipped)) / supervisorMiB, 2),
    pssRatio: round((supervisorPssMiB + sum(shipped, "pssMiB")) / supervisorPssMiB, 2),
  },
};

if (values.json) console.log(JSON.stringify(result));
else {
  console.log("IPC round trip, scan-shaped call (median per call; p99 for the host process)");
  for (const [name, r] of Object.entries(trips)) {
    console.log(
      `  ${name.padEnd(6)} in-process ${String(r.inProcessUs).padStart(8)} µs   host process ${String(r.processUs).padStart(8)} µs (p99 ${r.processP99Us})   ratio ${r.ratio}×`,
    );
  }
  console.log(`  sandbox of the bench host: ${JSON.stringify(sandbox)}`);
  const mem = result.idleMemory;
  console.log("idle memory with every built-in group running (RSS / PSS, MiB)");
  console.log(`  in-process (all handlers in the agent)  ${supervisorMiB} / ${supervisorPssMiB}`);
  const line = (label: string, hs: HostMem[]) =>
    console.log(
      `  ${label.padEnd(40)} ${sum(hs)} / ${sum(hs, "pssMiB")} in hosts (${hs.map((h) => `${h.group} ${h.rssMiB}/${h.pssMiB}`).join(", ")})`,
    );
  line("hosts from source", fromSource);
  if (compiled) line("hosts from dist/agent", compiled);
  else console.log("  (dist/agent missing: run `bun build.ts` to measure the shipped binary)");
  console.log(
    `  supervisor + hosts: RSS ${mem.totalRssMiB} MiB = ${mem.rssRatio}× in-process; PSS ${mem.totalPssMiB} MiB = ${mem.pssRatio}×`,
  );
}
