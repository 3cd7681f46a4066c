/**
 * On-access scanning overhead: wall time of `find DIR -type f -exec cat {} +`
 * without the agent, then with on-access scanning in block mode on DIR
 * (cold verdict cache: every file scanned by the DatasetA host over IPC),
 * then again (warm cache), all in the same run. Goal: ≤ 1.3× (issue 14).
 * Also prints the cache hit rate and the process sensor's sustained
 * events/s for an exec loop. Needs root (fanotify permission events).
 *
 *   bun bench/onaccess.ts [--files 2000] [--kb 16] [--json]
 */
import "reflect-metadata";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseConfig } from "../core/config.ts";
import type { ContentView } from "../core/handler/contract.ts";
import { HostManager } from "../core/host/manager.ts";
import { log } from "../core/log.ts";
import { AccessSensor } from "../core/sensors/access.ts";
import { SensorBus } from "../core/sensors/bus.ts";
import { ProcessSensor } from "../core/sensors/process.ts";
import { OnAccessSchema } from "../core/sensors-config.ts";
import { OnAccessScanner } from "../handlers/DatasetA/on-access.ts";
import { ScanService } from "../handlers/DatasetA/scan/service.ts";
import { defaultRegistry } from "../handlers/index.ts";

const { values } = parseArgs({
  options: {
    files: { type: "string", default: "2000" },
    kb: { type: "string", default: "16" },
    execs: { type: "string", default: "2000" },
    json: { type: "boolean" },
  },
});
const quiet = log.child({ component: "bench" });
quiet.setStderr(false);
if (process.getuid?.() !== 0) {
  console.error("bench/onaccess: needs root (fanotify permission events)");
  process.exit(2);
}

const root = mkdtempSync(join(tmpdir(), "outpost-bench-onaccess-"));
const dir = join(root, "tree");
const N = Number(values.files);
for (let i = 0; i < N; i++) {
  const sub = join(dir, `d${i % 20}`);
  if (i < 20) mkdirSync(sub, { recursive: true });
  const b = Buffer.alloc(Number(values.kb) * 1024);
  for (let j = 0; j < b.length; j += 4) b.writeUInt32LE((i * 2654435761 + j) >>> 0, j);
  writeFileSync(join(sub, `f${i}.bin`), b);
}

// DatasetA in its real sandboxed host process (HostManager), as the agent runs it.
const hex = (s: string) => Buffer.from(s).toString("hex");
const sigs = Array.from({ length: 200 }, (_, i) => `B.Sig${i}:0:*:${hex(`outpost-bench-signature-${i}`)}`);
const files: Record<string, Uint8Array> = { "main.ndb": new TextEncoder().encode(`${sigs.join("\n")}\n`) };
const view: ContentView = {
  type: "DatasetA",
  version: 1,
  signingTime: new Date().toISOString(),
  files: Object.keys(files),
  read: (p) => files[p]!,
  readText: (p) => new TextDecoder().decode(files[p]!),
};
const stateDir = join(root, "state");
const hosts = new HostManager({
  stateDir,
  registry: defaultRegistry(),
  log: quiet,
  config: parseConfig({ stateDir }).hosts,
  emit() {},
  onContentFailure: async () => null,
});
await hosts.validate("DatasetA", view);
await hosts.commit(await hosts.prepare("DatasetA", view));
const call = (t: string, m: string, a: unknown) => hosts.call(t, m, a);
const service = new ScanService({ call, policy: { lookups: false, samples: false } });

async function workload(): Promise<number> {
  const t = performance.now();
  const p = Bun.spawn(["sh", "-c", `find ${dir} -type f -exec cat {} + > /dev/null`]);
  if ((await p.exited) !== 0) throw new Error("workload failed");
  return performance.now() - t;
}

await workload(); // page cache warm for every run
const base = Math.min(await workload(), await workload(), await workload());
const scanner = new OnAccessScanner({
  config: OnAccessSchema.parse({ enabled: true, mode: "block", paths: [dir] }),
  stateDir,
  service,
  call,
  emit: () => {},
});
const sensor = new AccessSensor({
  mode: "block",
  paths: [dir],
  timeoutMs: 1000,
  decide: (ev) => scanner.decide(ev),
});
const problem = sensor.start();
if (problem) throw new Error(problem);
const cold = await workload();
const warm = Math.min(await workload(), await workload(), await workload());
const stats = scanner.stats();
const kernel = sensor.stats();
await sensor.stop();

// Process sensor throughput: an exec loop, events published per second while it runs.
const bus = new SensorBus();
let starts = 0;
let loopPid = -1;
bus.subscribe({
  name: "count",
  types: ["process.start"],
  deliver: (b) => {
    starts += b.filter((e) => e.ppid === loopPid).length;
  },
});
const ps = new ProcessSensor({ mode: "auto", publish: (e) => bus.publish(e) });
ps.start();
const E = Number(values.execs);
const t0 = performance.now();
const loop = Bun.spawn(["sh", "-c", `i=0; while [ $i -lt ${E} ]; do /bin/true; i=$((i+1)); done`]);
loopPid = loop.pid;
await loop.exited;
const execSeconds = (performance.now() - t0) / 1000;
await bus.drained();
await Bun.sleep(200);
const pstat = ps.status();
await ps.stop();

await hosts.unloadAll();
rmSync(root, { recursive: true, force: true });

const r2 = (x: number) => Math.round(x * 100) / 100;
const result = {
  files: N,
  kb: Number(values.kb),
  baselineMs: Math.round(base),
  coldMs: Math.round(cold),
  warmMs: Math.round(warm),
  coldRatio: r2(cold / base),
  warmRatio: r2(warm / base),
  scanned: stats.scanned,
  cacheHitRate: stats.cacheHitRate,
  failOpen: kernel.failOpen,
  execs: {
    loop: E,
    seen: starts,
    seconds: r2(execSeconds),
    eventsPerSecond: Math.round(starts / execSeconds),
    lost: (pstat.kernelLost as number) + (pstat.dropped as number),
  },
};
if (values.json) console.log(JSON.stringify(result));
else {
  console.log(`on-access (block) on find -exec cat over ${N} × ${values.kb} KiB files:`);
  console.log(`  without agent ${result.baselineMs} ms`);
  console.log(
    `  cold cache    ${result.coldMs} ms  (${result.coldRatio}×, ${result.scanned} files scanned over IPC)`,
  );
  console.log(
    `  warm cache    ${result.warmMs} ms  (${result.warmRatio}×, goal ≤ 1.3×; hit rate ${result.cacheHitRate})`,
  );
  console.log(`  fail-open ${result.failOpen}`);
  console.log(
    `process sensor: ${starts}/${E} execs seen in ${result.execs.seconds} s = ${result.execs.eventsPerSecond} events/s (lost ${result.execs.lost})`,
  );
}
process.exit(0);
