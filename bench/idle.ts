/**
 * Idle CPU of the supervisor plus every host group, before and after the
 * kernel sensors, in the same run. Each mode runs in its own supervisor
 * process (this script with --child) with one host per built-in group
 * (HostManager.warm, default watchdog and heartbeat), nothing happening;
 * CPU is utime + stime from /proc/PID/stat of the supervisor and its hosts,
 * sampled after a settling period and again `--seconds` later.
 *
 *   before: the /proc sweeps the sensors replaced — the process tagger every
 *           250 ms and Behavior's sensor (processes + connections) every 1 s.
 *   after:  the sensor bus with the process connector + FAN_OPEN_EXEC, the
 *           file sensor on /etc, on-access (detect) on a temp dir, the
 *           tagger fed from the bus, network.connect from nfnetlink_log;
 *           the supervisor without Bun's GC timer, as the systemd unit runs it.
 *           The events the sensors saw meanwhile are printed: on a shared
 *           machine "idle" is not idle, and their cost is activity, not idle.
 *
 *   hosts:  the hosts alone (the floor: watchdog sampling and heartbeats,
 *           adaptive since core/host/watchdog.ts).
 *
 *   stopped: "after", with the groups that hold nothing hot stopped when idle
 *           (hosts.idleStop; 3 s here instead of the default 300 s).
 *
 * PSS (smaps_rollup) of the supervisor and its hosts is read at the end of each run.
 *
 *   bun bench/idle.ts [--seconds 60] [--json]     (IDLE_DEBUG=1: ticks per process)
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    settle: { type: "string", default: "5" },
    child: { type: "string" },
    json: { type: "boolean" },
    modes: { type: "string", default: "hosts,before,after,stopped" },
  },
});
const SECONDS = Number(values.seconds);
type Mode = "hosts" | "before" | "after" | "stopped";
const TICK = 100; // USER_HZ on Linux

function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]); // utime, stime
  } catch {
    return 0;
  }
}

/** Proportional set size (shared pages split between their users), in KiB; 0 when unreadable. */
function pssKiB(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const n of readdirSync("/proc")) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const stat = readFileSync(`/proc/${n}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(n));
    } catch {}
  }
  return out;
}

if (values.child) {
  await runChild(values.child as Mode);
} else {
  const results: Record<
    string,
    {
      percentOfCore: number;
      ticks: number;
      hosts: number;
      pssMiB: number;
      supervisorPssMiB: number;
      seen: Record<string, number>;
    }
  > = {};
  for (const mode of values.modes!.split(",")) {
    const p = Bun.spawn([process.execPath, import.meta.path, "--child", mode], {
      stdout: "pipe",
      stderr: "inherit",
      // "after" runs the supervisor as the systemd unit does (core/install/unit.ts): no Bun GC timer.
      env: {
        ...process.env,
        OUTPOST_LOG_QUIET: "1",
        ...(mode === "after" || mode === "stopped" ? { BUN_GC_TIMER_DISABLE: "1" } : {}),
      },
    });
    const reader = p.stdout.getReader();
    let buf = "";
    while (!buf.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`${mode}: child exited before it was ready`);
      buf += new TextDecoder().decode(value);
    }
    // "stopped": long enough for the idle-stop groups (3 s quiet) to be gone before the window opens.
    await Bun.sleep(Math.max(Number(values.settle), mode === "stopped" ? 10 : 0) * 1000);
    const pids = () => [p.pid, ...childrenOf(p.pid)];
    const first = pids();
    const before0 = new Map(first.map((pid) => [pid, cpuTicks(pid)]));
    const t0 = [...before0.values()].reduce((n, x) => n + x, 0);
    const w0 = performance.now();
    await Bun.sleep(SECONDS * 1000);
    // A process that ended in the window (an idle stop) reads 0 at the end: count it as it last was.
    const t1 = first.reduce((n, pid) => n + (cpuTicks(pid) || (before0.get(pid) ?? 0)), 0);
    if (process.env.IDLE_DEBUG)
      console.error(mode, first.map((pid) => `${pid}:+${cpuTicks(pid) - (before0.get(pid) ?? 0)}`).join(" "));
    const wall = (performance.now() - w0) / 1000;
    // Memory at the end of the idle period: what an idle agent holds.
    const pss = first.map(pssKiB);
    p.kill("SIGTERM");
    // The child's last line: what its sensors saw during the run (activity on a shared machine).
    let rest = buf.slice(buf.indexOf("\n") + 1);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    await p.exited;
    const seen = rest.trim() ? (JSON.parse(rest.trim().split("\n").at(-1)!) as Record<string, number>) : {};
    const ticks = t1 - t0;
    results[mode] = {
      percentOfCore: Math.round((ticks / TICK / wall) * 10000) / 100,
      ticks,
      hosts: first.length - 1,
      pssMiB: Math.round(pss.reduce((n, x) => n + x, 0) / 102.4) / 10,
      supervisorPssMiB: Math.round(pss[0]! / 102.4) / 10,
      seen,
    };
  }
  if (values.json) console.log(JSON.stringify({ seconds: SECONDS, ...results }));
  else {
    console.log(`idle CPU over ${SECONDS} s, supervisor + hosts (goal ≤ 0.5 % of one core):`);
    for (const [m, r] of Object.entries(results))
      console.log(
        `  ${m.padEnd(7)} ${r.percentOfCore.toFixed(2)} % of one core (${r.ticks} ticks, ${r.hosts} hosts); PSS ${r.pssMiB} MiB (supervisor ${r.supervisorPssMiB} MiB; goal ≤ 100 MiB)` +
          (Object.keys(r.seen).length ? `; seen meanwhile: ${JSON.stringify(r.seen)}` : ""),
      );
  }
}

async function runChild(mode: Mode): Promise<void> {
  const { parseConfig } = await import("../core/config.ts");
  const { HostManager } = await import("../core/host/manager.ts");
  const { log } = await import("../core/log.ts");
  const { defaultRegistry } = await import("../handlers/index.ts");
  const { ProcessTagger } = await import("../handlers/LocalRepData/process-tagger.ts");
  const { ProcSensor } = await import("../handlers/Behavior/sensor.ts");
  const quiet = log.child({ component: "bench" });
  quiet.setStderr(false);
  const dir = mkdtempSync(join(tmpdir(), "outpost-bench-idle-"));
  const registry = defaultRegistry();
  const m = new HostManager({
    stateDir: dir,
    registry,
    log: quiet,
    // Every group running, as the goal is stated; "stopped" lets the groups that hold nothing hot stop
    // after 3 s (hosts.idleStop), as an idle agent does after its default 300 s.
    config: parseConfig({ stateDir: dir, hosts: { idleStop: { afterSeconds: mode === "stopped" ? 3 : 0 } } })
      .hosts,
    emit() {},
    onContentFailure: async () => null,
  });
  const groups = [...new Set(registry.types().map((t) => registry.require(t).manifest.group))].sort();
  for (const g of groups) await m.warm(g);
  const call = async () => [];
  const fs = {
    readFile: (p: string) => new Uint8Array(readFileSync(p)),
    readText: (p: string) => readFileSync(p, "utf8"),
    list: (d: string) => readdirSync(d),
    stat: (p: string) => {
      const s = statSync(p);
      return {
        size: s.size,
        mtimeMs: s.mtimeMs,
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
        isFile: s.isFile(),
        isDirectory: s.isDirectory(),
      };
    },
  };
  const stops: (() => unknown)[] = [];
  let counters: () => Record<string, number> = () => ({});
  if (mode === "before") {
    const tagger = new ProcessTagger({ call, pollIntervalMs: 250 });
    tagger.start();
    const sensor = new ProcSensor(fs as never, () => {}, {
      intervalMs: 1000,
      processes: true,
      connections: true,
    });
    sensor.start();
    stops.push(
      () => tagger.stop(),
      () => sensor.stop(),
    );
  } else if (mode === "after" || mode === "stopped") {
    const { SensorBus } = await import("../core/sensors/bus.ts");
    const { ProcessSensor } = await import("../core/sensors/process.ts");
    const { FileSensor } = await import("../core/sensors/files.ts");
    const { AccessSensor } = await import("../core/sensors/access.ts");
    const bus = new SensorBus();
    const publish = (e: Parameters<typeof bus.publish>[0]) => bus.publish(e);
    const ps = new ProcessSensor({ mode: "auto", publish });
    ps.start();
    const files = new FileSensor({ paths: ["/etc"], publish, maxDirs: 64 });
    files.start();
    const scanDir = mkdtempSync(join(tmpdir(), "outpost-bench-idle-scan-"));
    const access = new AccessSensor({
      mode: "detect",
      paths: [scanDir],
      timeoutMs: 1000,
      decide: async () => true,
    });
    access.start();
    const tagger = new ProcessTagger({ call });
    bus.subscribe({ name: "tagger", types: ["process.start"], deliver: (b) => tagger.ingest(b) });
    // network.connect from nfnetlink_log: Behavior no longer polls /proc/net/tcp.
    const { NetworkSensor } = await import("../core/sensors/network.ts");
    const net = new NetworkSensor({ mode: "auto", group: 3471, publish });
    net.start();
    counters = () => ({
      execs: ps.counters.execs,
      fileEvents: Number(files.status().events ?? 0),
      connects: net.counters.connects,
      network: net.sensor === "nflog" ? 1 : 0,
    });
    stops.push(
      () => ps.stop(),
      () => files.stop(),
      () => access.stop(),
      () => net.stop(),
      () => rmSync(scanDir, { recursive: true }),
    );
  }
  process.stdout.write("ready\n");
  await new Promise<void>((resolve) => process.once("SIGTERM", () => resolve()));
  process.stdout.write(`${JSON.stringify(counters())}\n`);
  for (const s of stops) await s();
  await m.unloadAll();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
