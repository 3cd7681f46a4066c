/**
 * Self-disable decisions (docs/ips.md, "Self-disable"), as pure functions of
 * what the service measured in one check interval. The seed's IPS "monitors
 * itself for BSODs or network disruptions … and automatically disables
 * itself"; here the disruptions are:
 *
 *   W1 IPS_QUEUE_OVERRUN   the kernel dropped for us, our socket overran
 *                          (ENOBUFS), or the backlog reached the limit
 *                          (packets pass uninspected by fail-open)
 *   W2 IPS_VERDICT_SLOW    p99 verdict latency above the threshold
 *   W3 IPS_HOST_CRASHLOOP  the ips host keeps crashing
 *   W4 IPS_PROBE_FAILED    the connectivity probe failed N times in a row
 *
 * The first that fires wins; the service then removes the queue rules and
 * raises health RED with the returned reason.
 */
import type { IpsConfig } from "../../core/ips-config.ts";

export interface ProcQueueRow {
  queue: number;
  portId: number;
  /** Packets waiting for our verdict right now. */
  total: number;
  /** Dropped by the kernel because the queue was full (without fail-open). */
  dropped: number;
  /** Dropped because netlink could not deliver to us. */
  userDropped: number;
}

/** /proc/net/netfilter/nfnetlink_queue: "queue portid total mode range dropped user_dropped seq 1". */
export function parseProcQueue(text: string, queue: number): ProcQueueRow | null {
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length < 7 || f.some((x) => !Number.isFinite(x))) continue;
    if (f[0] === queue) return { queue, portId: f[1]!, total: f[2]!, dropped: f[5]!, userDropped: f[6]! };
  }
  return null;
}

/** Nearest-rank percentile of unsorted samples (copied; the input is left alone). */
export function percentile(samples: ArrayLike<number>, p: number): number {
  if (samples.length === 0) return 0;
  const s = Float64Array.from(samples).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export interface Observation {
  /** Kernel drop counters since the previous check (dropped + userDropped). */
  kernelDrops: number;
  /** ENOBUFS reads since the previous check. */
  socketOverruns: number;
  /** Highest backlog seen (kernel queue_total, or our own pending count). */
  backlog: number;
  /** Verdict latencies (ms) of this interval, prevent mode only. */
  latencies: ArrayLike<number>;
  hostState: string | null;
  hostCrashes: number;
  probeFailures: number;
}

export interface Trip {
  code: "IPS_QUEUE_OVERRUN" | "IPS_VERDICT_SLOW" | "IPS_HOST_CRASHLOOP" | "IPS_PROBE_FAILED";
  reason: string;
}

export function judge(o: Observation, cfg: IpsConfig): Trip | null {
  const sd = cfg.selfDisable;
  const full = Math.max(1, Math.floor(cfg.queueMaxLen * sd.backlogFraction));
  const overruns = o.kernelDrops + o.socketOverruns + (o.backlog >= full ? 1 : 0);
  if (overruns >= sd.overruns) {
    return {
      code: "IPS_QUEUE_OVERRUN",
      reason: `queue ${cfg.queue} overran (kernel drops ${o.kernelDrops}, socket overruns ${o.socketOverruns}, backlog ${o.backlog}/${cfg.queueMaxLen})`,
    };
  }
  if (o.latencies.length >= sd.minSamples) {
    const p99 = percentile(o.latencies, 99);
    if (p99 > sd.verdictP99Ms) {
      return {
        code: "IPS_VERDICT_SLOW",
        reason: `verdict latency p99 ${p99.toFixed(1)} ms > ${sd.verdictP99Ms} ms over ${o.latencies.length} packets`,
      };
    }
  }
  if (o.hostState === "crash-looping" || o.hostCrashes >= sd.hostCrashes) {
    return {
      code: "IPS_HOST_CRASHLOOP",
      reason: `the ips host is crash-looping (${o.hostCrashes} crashes in the supervisor's window)`,
    };
  }
  if (sd.probe && o.probeFailures >= sd.probe.failures) {
    return {
      code: "IPS_PROBE_FAILED",
      reason: `connectivity probe ${sd.probe.target} failed ${o.probeFailures} times in a row`,
    };
  }
  return null;
}
