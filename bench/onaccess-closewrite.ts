/**
 * What block mode's FAN_CLOSE_WRITE subscription costs a write-heavy workload. Kernel ignore marks
 * (core/sensors/ignore-marks.ts) need every close after writing to reach the main thread, which takes
 * the file's ignore mark off; without ignore marks block mode subscribes to no close-write at all. The
 * workload writes and then appends to --files small files in a marked temp dir (2 × files closes after
 * writing), with the access sensor in block mode and a decider that allows at once — so only the
 * sensor's own cost is measured. For each run, both variants in turn (off = baseline, same run):
 * wall time of the workload and the supervisor's CPU until every close-write was handled. Needs root.
 *
 *   bun bench/onaccess-closewrite.ts [--files 3000] [--runs 7]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { AccessSensor } from "../core/sensors/access.ts";

const { values } = parseArgs({
  options: { files: { type: "string", default: "3000" }, runs: { type: "string", default: "7" } },
});
if (process.getuid?.() !== 0) {
  console.error("bench/onaccess-closewrite: needs root (fanotify permission events)");
  process.exit(2);
}
const N = Number(values.files);
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? Number.NaN;
const r2 = (x: number) => Math.round(x * 100) / 100;

async function once(ignoreMarks: boolean): Promise<{ wallMs: number; cpuMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), "outpost-bench-cw-"));
  const sensor = new AccessSensor({
    mode: "block",
    paths: [dir],
    timeoutMs: 1000,
    decide: async () => true,
    maxIgnoreMarks: ignoreMarks ? 100_000 : 0,
  });
  const why = sensor.start();
  if (why) throw new Error(why);
  try {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const script = `cd ${dir} && i=0; while [ $i -lt ${N} ]; do echo x > f$i; echo y >> f$i; i=$((i+1)); done`;
    const p = Bun.spawn(["sh", "-c", script]);
    if ((await p.exited) !== 0) throw new Error("workload failed");
    const wallMs = performance.now() - t0;
    // Every close-write handled (a deadline, not a delay): the supervisor's share is all in.
    const want = ignoreMarks ? 2 * N : 0;
    const deadline = Date.now() + 30_000;
    while ((sensor.stats().closeWrites as number) < want && Date.now() < deadline) await Bun.sleep(5);
    const c = process.cpuUsage(c0);
    return { wallMs, cpuMs: (c.user + c.system) / 1000 };
  } finally {
    await sensor.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const load0 = loadavg()[0]!;
const wallRatio: number[] = [];
const cpu = { off: [] as number[], on: [] as number[] };
const wall = { off: [] as number[], on: [] as number[] };
for (let i = 0; i < Number(values.runs); i++) {
  const off = await once(false);
  const on = await once(true);
  wall.off.push(off.wallMs);
  wall.on.push(on.wallMs);
  cpu.off.push(off.cpuMs);
  cpu.on.push(on.cpuMs);
  wallRatio.push(on.wallMs / off.wallMs);
}
const perClose = ((median(cpu.on) - median(cpu.off)) * 1000) / (2 * N);
console.log(
  `block mode, ${N} files written then appended (${2 * N} closes after writing), medians of ${values.runs} (load ${r2(load0)} → ${r2(loadavg()[0]!)})`,
);
console.log(
  `  workload wall: without close-write ${Math.round(median(wall.off))} ms, with ${Math.round(median(wall.on))} ms = ${r2(median(wallRatio))}×`,
);
console.log(
  `  supervisor CPU: ${Math.round(median(cpu.off))} → ${Math.round(median(cpu.on))} ms = ${r2(median(cpu.on) / median(cpu.off))}× (~${Math.round(perClose)} µs per close-write)`,
);
process.exit(0);
