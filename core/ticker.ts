/**
 * One wake-up for the supervisor's periodic work, instead of one per timer.
 *
 * An idle supervisor runs a dozen periodic jobs: a watchdog per host
 * process (every second while the host is busy), self-help's log poll,
 * IPS's self-disable check, the event sinks' flush, status and statistics
 * refreshes. Each `setInterval` started at its own moment, so each woke the
 * process on its own: the event loop, its timers and the microtask queue
 * ran once per job. A wake-up costs far more than the work in it: six
 * one-second jobs of one /proc read each cost a Bun process 2.2 ms of CPU a
 * second on their own timers and 1.3 ms on this ticker (bench/wakeups.ts);
 * the demo agent's supervisor went from 729 to 539 ms per 90 s idle.
 *
 * So delays of a second or more are rounded to a grid of whole seconds on
 * the monotonic clock, and one real timer serves every job due at the same
 * grid point: jobs of any period meet at the second they share. A job is
 * never run more than `slack` (a quarter of its delay, at most 250 ms)
 * early, nor more than one grid step late; a job that re-arms itself with
 * the same delay stays on the grid exactly. Shorter delays keep their own
 * timer, unrounded: they ask for precision the grid would take away.
 *
 * The real timer is unref'd: like every job it replaces, the ticker never
 * keeps a process alive on its own.
 */
import { ranCodeIfFaulted } from "./code-release.ts";
import { describeError } from "./errors.ts";
import { log } from "./log.ts";

/** The interface HostWatchdog and others take (real timers, the ticker, or a test's fake). */
export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

interface Job {
  due: number;
  fn: () => void;
}

export interface TickerOptions {
  gridMs?: number;
  maxSlackMs?: number;
  now?: () => number;
  timers?: Timers;
}

const plainTimers: Timers = {
  set(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clear(t) {
    clearTimeout(t as ReturnType<typeof setTimeout>);
  },
};

export class Ticker implements Timers {
  private readonly jobs = new Set<Job>();
  private timer: unknown;
  /** When the real timer fires (monotonic ms), if armed. */
  private armedFor = Number.POSITIVE_INFINITY;
  private readonly gridMs: number;
  private readonly maxSlackMs: number;
  private readonly now: () => number;
  private readonly timers: Timers;
  /** Real wake-ups so far (tests, the idle benchmark). */
  wakeups = 0;

  constructor(opts: TickerOptions = {}) {
    this.gridMs = opts.gridMs ?? 1000;
    this.maxSlackMs = opts.maxSlackMs ?? 250;
    this.now = opts.now ?? (() => performance.now());
    this.timers = opts.timers ?? plainTimers;
  }

  /** Runs `fn` once after about `ms` (on the grid when `ms` is at least one grid step). */
  set(fn: () => void, ms: number): unknown {
    if (!(ms >= this.gridMs)) return { plain: this.timers.set(fn, Math.max(0, ms || 0)) };
    const slack = Math.min(this.maxSlackMs, ms / 4);
    const due = Math.ceil((this.now() + ms - slack) / this.gridMs) * this.gridMs;
    const job: Job = { due, fn };
    this.jobs.add(job);
    if (due < this.armedFor) this.arm(due);
    return job;
  }

  clear(handle: unknown): void {
    if (handle && typeof handle === "object" && "plain" in handle) {
      this.timers.clear((handle as { plain: unknown }).plain);
      return;
    }
    this.jobs.delete(handle as Job);
    // The real timer may now fire with nothing due; it then re-arms for the next job. Cheaper than
    // recomputing the minimum on every clear (the watchdog clears and re-arms on every poke).
    if (this.jobs.size === 0) this.disarm();
  }

  /**
   * Runs `fn` every `ms` until the returned function is called: setInterval's replacement, on the
   * grid. A run that throws does not stop the next.
   */
  every(ms: number, fn: () => void): () => void {
    let handle: unknown;
    let stopped = false;
    const loop = () => {
      handle = this.set(() => {
        if (stopped) return;
        loop();
        fn();
      }, ms);
    };
    loop();
    return () => {
      stopped = true;
      this.clear(handle);
    };
  }

  /** Jobs waiting (tests). */
  get pending(): number {
    return this.jobs.size;
  }

  private arm(due: number): void {
    this.disarm();
    this.armedFor = due;
    this.timer = this.timers.set(() => this.fire(), Math.max(0, due - this.now()));
  }

  private disarm(): void {
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    this.wakeups++;
    // The process is awake anyway: what ran since the last wake-up gives its code pages back once
    // it is quiet again (code-release.ts).
    ranCodeIfFaulted();
    // A timer may fire a hair before its grid point (clock granularity): what is due within a
    // millisecond runs now rather than costing a wake-up of its own.
    const now = this.now() + 1;
    const due: Job[] = [];
    for (const j of this.jobs) if (j.due <= now) due.push(j);
    for (const j of due) this.jobs.delete(j);
    for (const j of due) {
      try {
        j.fn();
      } catch (e) {
        // A job's error must not cost the other jobs their run, nor stop the process.
        log.error("periodic job failed", { component: "ticker", ...describeError(e) });
      }
    }
    let next = Number.POSITIVE_INFINITY;
    for (const j of this.jobs) if (j.due < next) next = j.due;
    if (next < this.armedFor && Number.isFinite(next)) this.arm(next);
  }
}

/** The process's ticker: every periodic job of the supervisor shares its wake-ups. */
export const ticker = new Ticker();
