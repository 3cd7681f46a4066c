/**
 * Garbage collection when a process goes quiet, instead of Bun's GC timer.
 * Bun wakes every second to read /proc/self/statm and decide whether to
 * collect; ten idle hosts doing that were a measurable share of an idle
 * agent's CPU (bench/idle.ts). Hosts run with BUN_GC_TIMER_DISABLE=1
 * (hostEnv, launch.ts), the supervisor too under systemd (install/unit.ts),
 * and collect once, fully, `quietMs` after their last work: the memory a
 * burst left behind is returned, and an idle process has no timer at all.
 * At most one collection per `minIntervalMs`, so steady light traffic (an
 * event every few seconds) cannot turn into a full GC every few seconds.
 * JSC still collects on allocation while the process works — but not for
 * memory it barely sees: a 120 MiB payload staged into a host and dropped
 * after its load stayed resident in a host whose traffic never paused for
 * `quietMs` (issue 21: the shared host with ESH fed log lines every second
 * held 129 MiB). So work that keeps coming delays the collection by at most
 * `maxDelayMs` after the touch that armed it.
 *
 * A collection that finds the process really idle — nothing touched it for
 * `quietMs` — also shrinks its footprint (`collectIdle`): JavaScriptCore drops
 * its compiled code, collects, and returns its allocator's free pages. That
 * was most of what the first update cycle left in the supervisor (its CMS,
 * X.509 and update modules: 88.9 → 61.3 MiB PSS). Code runs again from the
 * executable's bytecode on the next call; a process kept busy (a collection
 * forced by `maxDelayMs`) keeps its JIT code.
 *
 * The 30 s floor between collections is a trade: on the demo agent with every
 * group running (two scheduled queries every 10 s), a 300 s floor in every
 * process took idle CPU from 58 to 44 ticks per 120 s, and PSS from 216 to
 * 240 MiB. (perf over 120 s of the idle supervisor: JavaScriptCore's GC
 * threads were ~17 % of its samples, the allocator's scavenger ~27 %.)
 */
import { releaseCodePages } from "../code-pages.ts";

/**
 * A full collection; after `quietMs` of nothing, also JavaScriptCore's shrink (see above) and the
 * executable's code pages unmapped (core/code-pages.ts).
 */
export function collectIdle(idle: boolean): void {
  Bun.gc(true);
  if (!idle) return;
  // Deprecated in the types (an alias may replace it), so called only where it exists.
  (Bun as { shrink?: () => void }).shrink?.();
  releaseCodePages();
}

export class IdleGc {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastAt = Number.NEGATIVE_INFINITY;
  /** The last touch: a collection this long after it finds the process idle. */
  private lastTouch = Number.NEGATIVE_INFINITY;
  /** When the pending collection must happen at the latest (work or no work). */
  private dueBy = Number.POSITIVE_INFINITY;
  collections = 0;

  constructor(
    private readonly quietMs = 2000,
    private readonly minIntervalMs = 30_000,
    /** `idle`: nothing touched the process for quietMs (not a deadline collection of busy work). */
    private readonly collect: (idle: boolean) => void = collectIdle,
    private readonly now: () => number = Date.now,
    private readonly maxDelayMs = 30_000,
  ) {}

  /** Work happened: (re)arm the one collection after the process goes quiet, or by its deadline. */
  touch(): void {
    const now = this.now();
    this.lastTouch = now;
    if (this.timer) clearTimeout(this.timer);
    else this.dueBy = Math.max(now, this.lastAt + this.minIntervalMs) + this.maxDelayMs;
    const quiet = Math.max(this.quietMs, this.lastAt + this.minIntervalMs - now);
    this.arm(Math.max(0, Math.min(quiet, this.dueBy - now)));
  }

  /**
   * Garbage worth returning now — a content switch just dropped its staged payload (a host's
   * commit, discard, unload): one collection within quietMs, whatever minIntervalMs says.
   */
  soon(): void {
    const now = this.now();
    this.dueBy = Math.min(this.dueBy, now + this.quietMs);
    if (this.timer) clearTimeout(this.timer);
    this.arm(Math.max(0, this.dueBy - now));
  }

  private arm(wait: number, followUp = false): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.dueBy = Number.POSITIVE_INFINITY;
      this.lastAt = this.now();
      this.collections++;
      const idle = this.lastAt - this.lastTouch >= this.quietMs;
      this.collect(idle);
      // A collection of busy work (a deadline, or soon() amid requests) may be the process's last
      // before it goes quiet for good, and nothing would then give it the idle one: it kept its
      // compiled code and its executable's pages for ever (the IPS host, idle after its content
      // load, kept 41 MiB of the executable mapped). So one more at the floor's pace; a touch re-arms
      // as usual.
      if (!idle && !followUp) {
        this.dueBy = this.lastAt + this.minIntervalMs + this.maxDelayMs;
        this.arm(Math.max(this.quietMs, this.minIntervalMs), true);
      }
    }, wait);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.dueBy = Number.POSITIVE_INFINITY;
  }
}
