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
 * JSC still collects on allocation while the process works.
 */
export class IdleGc {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastAt = Number.NEGATIVE_INFINITY;
  collections = 0;

  constructor(
    private readonly quietMs = 2000,
    private readonly minIntervalMs = 30_000,
    private readonly collect: () => void = () => Bun.gc(true),
    private readonly now: () => number = Date.now,
  ) {}

  /** Work happened: (re)arm the one collection after the process goes quiet. */
  touch(): void {
    if (this.timer) clearTimeout(this.timer);
    const wait = Math.max(this.quietMs, this.lastAt + this.minIntervalMs - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.lastAt = this.now();
      this.collections++;
      this.collect();
    }, wait);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
