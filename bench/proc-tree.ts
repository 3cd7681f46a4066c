/**
 * Runs a command and measures it the way the scan benchmarks report it:
 * wall time, CPU time (user + system of the command and every process it
 * waited for) and the peak of the summed RSS of the process and its
 * descendants, sampled from /proc every 20 ms. Not rusage's maxRSS: Linux
 * carries the parent's RSS at fork into the child's high-water mark across
 * exec, so every child of a large benchmark process would "peak" at the
 * benchmark's own size (bench/scan.ts reported 175–330 MB that way).
 */
import { readFileSync } from "node:fs";

export interface SampledRun {
  wallMs: number;
  cpuMs: number;
  /** Peak summed RSS of the process tree, MB. */
  treeRssMb: number;
  /** Peak summed PSS of the process tree, MB (shared pages split among their users); only with `pss: true`. */
  treePssMb?: number;
  code: number;
  out: string;
}

/** Sum of VmRSS over `pid` and its descendants, in kB (0 once it is gone). */
export function treeRssKb(pid: number): number {
  let kb = 0;
  try {
    const m = readFileSync(`/proc/${pid}/status`, "latin1").match(/VmRSS:\s+(\d+)/);
    kb += m ? Number(m[1]) : 0;
    for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, "latin1")
      .split(" ")
      .filter(Boolean))
      kb += treeRssKb(Number(child));
  } catch {
    // The process ended between the reads.
  }
  return kb;
}

/** The pids of `pid` and its descendants (those alive now). */
export function processTree(pid: number): number[] {
  const pids = [pid];
  try {
    for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, "latin1")
      .split(" ")
      .filter(Boolean))
      pids.push(...processTree(Number(child)));
  } catch {
    // The process ended between the reads.
  }
  return pids;
}

/**
 * Sum of Pss over `pid` and its descendants, in kB. PSS divides each shared
 * page among the processes mapping it, so two Bun processes mapping the same
 * 120 MB executable are not counted twice (RSS counts it in each).
 */
export function treePssKb(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) {
    try {
      const m = readFileSync(`/proc/${p}/smaps_rollup`, "latin1").match(/^Pss:\s+(\d+)/m);
      kb += m ? Number(m[1]) : 0;
    } catch {
      // Gone already.
    }
  }
  return kb;
}

export async function runSampled(
  cmd: string[],
  opts: { env?: Record<string, string | undefined>; ok?: number[]; pss?: boolean } = {},
): Promise<SampledRun> {
  const ok = opts.ok ?? [0];
  const t = performance.now();
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", env: opts.env ?? process.env });
  let peak = 0;
  let peakPss = 0;
  const sample = () => {
    peak = Math.max(peak, treeRssKb(p.pid));
    if (opts.pss) peakPss = Math.max(peakPss, treePssKb(p.pid));
  };
  sample();
  const sampler = setInterval(sample, 20);
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const code = await p.exited;
  clearInterval(sampler);
  const wallMs = performance.now() - t;
  if (!ok.includes(code)) throw new Error(`${cmd.join(" ")} exited ${code}: ${err.slice(0, 2000)}`);
  const ru = p.resourceUsage();
  const cpuMs = ru ? Number(ru.cpuTime.user + ru.cpuTime.system) / 1000 : Number.NaN;
  return {
    wallMs,
    cpuMs,
    treeRssMb: Math.round(peak / 1024),
    ...(opts.pss ? { treePssMb: Math.round(peakPss / 1024) } : {}),
    code,
    out,
  };
}
