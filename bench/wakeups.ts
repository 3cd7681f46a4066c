#!/usr/bin/env bun
/**
 * What a wake-up costs an idle process, and what the shared ticker saves
 * (core/ticker.ts). Two child processes of this runtime, side by side, run
 * the same periodic jobs for `--seconds`: `--jobs` jobs every second, each
 * reading /proc/self/stat (the watchdog's sample is two such reads):
 *
 *   timers: one setInterval per job, started at spread moments of the
 *           second, as the supervisor's jobs were (one wake-up per job);
 *   ticker: the same jobs on one Ticker (one wake-up a second for all).
 *
 * CPU is the children's own run time from /proc/PID/schedstat (nanoseconds,
 * every thread), read after a settling second and again at the end; the
 * ratio is ticker / timers in the same run.
 *
 *   bun bench/wakeups.ts [--seconds 20] [--jobs 6] [--json]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { threadCpuNanos } from "./proc-memory.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "20" },
    jobs: { type: "string", default: "6" },
    child: { type: "string" },
    json: { type: "boolean" },
  },
});
const JOBS = Number(values.jobs);

if (values.child) {
  const { Ticker } = await import("../core/ticker.ts");
  const job = () => readFileSync("/proc/self/stat", "utf8").split(" ");
  setInterval(() => {}, 1 << 30); // the ticker's timer is unref'd: this keeps the child alive
  if (values.child === "ticker") {
    const t = new Ticker();
    for (let i = 0; i < JOBS; i++) setTimeout(() => t.every(1000, job), (i * 1000) / JOBS);
  } else {
    for (let i = 0; i < JOBS; i++) setTimeout(() => setInterval(job, 1000), (i * 1000) / JOBS);
  }
  process.stdout.write("ready\n");
} else {
  const runNs = (pid: number) => [...threadCpuNanos(pid).values()].reduce((n, ns) => n + ns, 0);
  const modes = ["timers", "ticker"] as const;
  const kids = modes.map((m) =>
    Bun.spawn([process.execPath, import.meta.path, "--child", m, "--jobs", String(JOBS)], {
      stdout: "pipe",
      stderr: "inherit",
      env: { ...process.env, BUN_GC_TIMER_DISABLE: "1" },
    }),
  );
  try {
    for (const k of kids) {
      const reader = k.stdout.getReader();
      const { value } = await reader.read();
      if (!new TextDecoder().decode(value).includes("ready")) throw new Error("child did not start");
      reader.releaseLock();
    }
    await Bun.sleep(1500); // every job armed and on its cadence
    const t0 = performance.now();
    const before = kids.map((k) => runNs(k.pid));
    await Bun.sleep(Number(values.seconds) * 1000);
    const after = kids.map((k) => runNs(k.pid));
    const secs = (performance.now() - t0) / 1000;
    const msPerSec = modes.map((_, i) => (after[i]! - before[i]!) / 1e6 / secs);
    const result = {
      jobs: JOBS,
      seconds: Math.round(secs),
      timersMsPerSecond: Math.round(msPerSec[0]! * 1000) / 1000,
      tickerMsPerSecond: Math.round(msPerSec[1]! * 1000) / 1000,
      ratio: Math.round((msPerSec[1]! / msPerSec[0]!) * 100) / 100,
    };
    if (values.json) console.log(JSON.stringify(result));
    else {
      console.log(`${JOBS} one-second jobs, ${result.seconds} s, CPU of an otherwise idle process:`);
      console.log(`  one timer per job      ${result.timersMsPerSecond.toFixed(3)} ms/s`);
      console.log(`  shared ticker          ${result.tickerMsPerSecond.toFixed(3)} ms/s`);
      console.log(`  ratio ticker / timers  ${result.ratio}×`);
    }
  } finally {
    for (const k of kids) k.kill();
  }
}
