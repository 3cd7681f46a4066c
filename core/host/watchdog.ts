/**
 * The watchdog of one host process: RSS/CPU sampling (memory limit,
 * status, metrics) and the liveness heartbeat, driven by what the host does
 * instead of a fixed 1 s clock. An idle agent has ten hosts; sampling each
 * every second and asking each for status every 15 s was most of the idle
 * CPU of the supervisor and the hosts (bench/idle.ts).
 *
 * - While the host is busy — traffic on its channel, or its CPU time moved
 *   since the last sample — it is sampled every `baseMs`, as before.
 * - When a sample finds it quiet, the next one waits twice as long, up to
 *   `maxIdleMs`. Memory cannot grow without CPU time, so a host whose CPU
 *   time stands still cannot be creeping towards its limit; the first
 *   sample that sees CPU move drops back to `baseMs`. Traffic (`poke`)
 *   does so at once.
 * - The heartbeat is sent every `heartbeatMs` until one sent after the
 *   host's last activity has been answered. A host that answered since it
 *   last used CPU or got a request is alive and its status is current;
 *   one that does not answer (in a loop, or blocked in a system call) is
 *   killed by the heartbeat timeout, as before.
 *
 * Our own heartbeat and status requests cost the host a little CPU; a
 * sample that moved by at most `quietCpuSeconds` still counts as quiet,
 * or the heartbeat would keep the host "active" for ever.
 */
import { type Timers, ticker } from "../ticker.ts";
import type { ProcSample } from "./sandbox.ts";

export interface WatchdogOptions {
  baseMs: number;
  maxIdleMs: number;
  heartbeatMs: number;
  /** False: no RSS/CPU sampling (watchdogIntervalMs 0), only the heartbeat, on `baseMs` ticks. */
  sampling?: boolean;
  /** CPU time a quiet host may use between samples (our own status requests). */
  quietCpuSeconds?: number;
  sample(): ProcSample | null;
  onSample(s: ProcSample): void;
  /** Sends one heartbeat; the caller enforces its timeout. True when the host answered. */
  heartbeat(): Promise<boolean>;
  /** Requests in flight on the host's channel. */
  inFlight(): number;
  now?: () => number;
  /** Default: the process's shared ticker. */
  timers?: Timers;
}

export class HostWatchdog {
  private timer: unknown;
  private dueAt = 0;
  private intervalMs: number;
  private lastCpu: number | undefined;
  private lastHeartbeatAt: number;
  /** When the last heartbeat that was answered was sent. */
  private lastAnsweredAt: number;
  /** Last time the host did something (traffic or CPU). */
  activityAt: number;
  /** Samples taken (tests and the idle benchmark read it). */
  samples = 0;
  heartbeats = 0;
  private stopped = false;
  private readonly timers: Timers;
  private readonly now: () => number;

  constructor(private readonly opts: WatchdogOptions) {
    // The process's ticker: every host's samples and heartbeats wake the supervisor once a second
    // together, not each on its own (core/ticker.ts).
    this.timers = opts.timers ?? ticker;
    this.now = opts.now ?? Date.now;
    this.intervalMs = opts.baseMs;
    this.activityAt = this.now();
    this.lastHeartbeatAt = this.now();
    this.lastAnsweredAt = this.now();
    this.arm(opts.baseMs);
  }

  /** Real traffic with the host: sample at the base rate again, from now. */
  poke(): void {
    if (this.stopped) return;
    this.activityAt = this.now();
    this.intervalMs = this.opts.baseMs;
    // Cheap on the hot path: only re-arm when the pending sample is further away than the base interval.
    if (this.dueAt - this.now() > this.opts.baseMs) this.arm(this.opts.baseMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
  }

  /** The current sampling interval (status, tests). */
  get currentIntervalMs(): number {
    return this.intervalMs;
  }

  private arm(ms: number): void {
    if (this.stopped) return;
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.dueAt = this.now() + ms;
    this.timer = this.timers.set(() => this.tick(), ms);
  }

  private tick(): void {
    this.timer = undefined;
    if (this.stopped) return;
    const s = this.opts.sampling === false ? null : this.opts.sample();
    if (s) this.samples++;
    const now = this.now();
    let busy = this.opts.inFlight() > 0 || now - this.activityAt < this.intervalMs;
    if (s) {
      this.opts.onSample(s);
      const quiet = this.opts.quietCpuSeconds ?? 0.02;
      if (this.lastCpu !== undefined && s.cpuSeconds - this.lastCpu > quiet) {
        busy = true;
        this.activityAt = now;
      }
      this.lastCpu = s.cpuSeconds;
    }
    // Until a heartbeat sent after the last activity is answered, keep asking every heartbeatMs: a
    // host blocked in a system call uses no CPU either, and only the missing answer reveals it.
    if (
      this.opts.heartbeatMs > 0 &&
      now - this.lastHeartbeatAt >= this.opts.heartbeatMs &&
      this.activityAt > this.lastAnsweredAt
    ) {
      this.lastHeartbeatAt = now;
      this.heartbeats++;
      void this.opts.heartbeat().then((answered) => {
        if (answered && now > this.lastAnsweredAt) this.lastAnsweredAt = now;
      });
      busy = true;
    }
    this.intervalMs = busy ? this.opts.baseMs : Math.min(this.intervalMs * 2, this.opts.maxIdleMs);
    this.arm(this.intervalMs);
  }
}
