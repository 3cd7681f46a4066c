/**
 * Garbage collection in a host when it goes quiet, instead of Bun's GC
 * timer. Bun wakes every second to read /proc/self/statm and decide
 * whether to collect; ten idle hosts doing that were a measurable share of
 * an idle agent's CPU (bench/idle.ts). Hosts therefore run with
 * BUN_GC_TIMER_DISABLE=1 (hostEnv, launch.ts) and collect once, fully, when
 * `quietMs` have passed since their last request: the memory a burst of
 * work left behind is returned, and an idle host then has no timer at all.
 * JSC still collects on allocation while the host works.
 */
export class IdleGc {
  private timer: ReturnType<typeof setTimeout> | undefined;
  collections = 0;

  constructor(
    private readonly quietMs = 2000,
    private readonly collect: () => void = () => Bun.gc(true),
  ) {}

  /** Work happened: (re)arm the one collection after the host goes quiet. */
  touch(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.collections++;
      this.collect();
    }, this.quietMs);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
