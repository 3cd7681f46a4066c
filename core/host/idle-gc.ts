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
 *
 * A fixed floor is wrong for housekeeping, though. An otherwise idle host
 * gets a safety-net poll every 30 s (ESH's `sources`, Behavior's feed
 * refresh): each one armed a full collection, a shrink that threw the JIT
 * code away and code pages faulted back in on the next poll — the shared
 * host spent two thirds of its idle CPU collecting the garbage of one small
 * request. So the floor doubles after each idle collection whose window held
 * light traffic (≤ `lightTouches` per minIntervalMs), up to `maxIntervalMs`,
 * and real work — more touches, soon(), a deadline collection — brings it
 * back at once. While it is stretched, a quiet spell still gives the code
 * pages back (code-release.ts, no collection), so PSS stays where it was. Demo
 * agent, both builds side by side, three 120 s windows: shared host 42 →
 * 8–16 ms, whole tree 438/491/453 → 432/467/413 ms, PSS the same.
 *
 * Touches count housekeeping, not what a collection gets back. A process
 * with periodic work — the query host and its worker running two scheduled
 * queries every 10 s, the supervisor writing their results — is touched
 * several times per floor, so the floor stayed at 30 s, and every idle
 * collection there found nothing to free: the query worker's heap went
 * 1.86 → 2.14 MB, the query host's 2.48 → 2.76, the supervisor's 57.3 →
 * 58.1 MB, each for 7–30 ms of CPU, and its shrink threw away the JIT code
 * the next run compiled again. So the heap is weighed around each idle
 * collection (`heapBytes`): one that gave back less than `minYieldBytes`
 * per `minIntervalMs` since the last one stretches the floor too, and
 * touches do not shorten a floor stretched that way (they are what the
 * collection just found worthless). soon(), a deadline collection of busy
 * work and a collection that does give memory back bring the short floor
 * back.
 *
 * Several IdleGc live in one process (the supervisor has three: its event
 * stream, the host manager, the sensors). A full collection is the
 * process's, not the instance's: an idle collection due in one instance is
 * skipped when another already made one since this instance's last touch
 * (the supervisor collected twice within 2 s).
 */
import { heapSize } from "bun:jsc";
import { releaseCodePages } from "../code-pages.ts";
import { type CodeRelease, processCodeRelease } from "../code-release.ts";
import { releaseBuiltSchemas } from "../schema/lazy-schema.ts";

/**
 * A full collection; after `quietMs` of nothing, also JavaScriptCore's shrink (see above) and the
 * executable's code pages unmapped (core/code-pages.ts).
 */
export function collectIdle(idle: boolean): void {
  // Schemas built for work that is over: this collection frees them, their next use builds them again.
  if (idle) releaseBuiltSchemas();
  Bun.gc(true);
  if (!idle) return;
  // Deprecated in the types (an alias may replace it), so called only where it exists.
  (Bun as { shrink?: () => void }).shrink?.();
  releaseCodePages();
}

export interface IdleGcOptions {
  /** Nothing for this long: collect (and the collection is an idle one). */
  quietMs?: number;
  /** The shortest time between two collections (the floor). */
  minIntervalMs?: number;
  /** Where light traffic lets the floor grow to (see `lightTouches`). */
  maxIntervalMs?: number;
  /**
   * Touches per `minIntervalMs`, on average since the last collection, that still count as light
   * traffic: housekeeping, not work.
   */
  lightTouches?: number;
  /** Work keeps coming: collect anyway this long after the touch that armed the collection. */
  maxDelayMs?: number;
  /** `idle`: nothing touched the process for quietMs (not a deadline collection of busy work). */
  collect?: (idle: boolean) => void;
  /**
   * What a quiet spell gets whatever the floor says: the executable's pages given back (see touch()).
   * Default: the process's CodeRelease, shared with ranCode(); a test's own counts its releases.
   */
  codeRelease?: CodeRelease;
  /**
   * The heap's size, read before and after an idle collection to weigh what it gave back. Default:
   * JavaScriptCore's, when `collect` is the default; none (touches alone decide) for a custom one.
   */
  heapBytes?: () => number;
  /** An idle collection that gave back less than this per minIntervalMs since the last one stretches the floor. */
  minYieldBytes?: number;
  now?: () => number;
}

/** Collections in this process, by any IdleGc (see above). */
const processCollections = { idle: 0 };

export class IdleGc {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastAt = Number.NEGATIVE_INFINITY;
  /** The last touch: a collection this long after it finds the process idle. */
  private lastTouch = Number.NEGATIVE_INFINITY;
  /** When the pending collection must happen at the latest (work or no work). */
  private dueBy = Number.POSITIVE_INFINITY;
  /** Touches since the last collection. */
  private touches = 0;
  /** Touches ever: a timer set before the latest touch re-reads the clock when it fires. */
  private touchSeq = 0;
  /** soon() since the last collection: real garbage, whatever the touch count says. */
  private dropped = false;
  /** The pending collection is the one that follows a busy collection (see arm()). */
  private followUp = false;
  /** The floor now: minIntervalMs, doubled by each idle collection of light traffic. */
  private floorMs: number;
  /** The floor was stretched because the last idle collection gave nothing back (see touch()). */
  private stretchedByYield = false;
  /** processCollections.idle at the last touch: a later idle collection of the process covers it. */
  private idleSeqAtTouch = -1;
  private readonly heapBytes: (() => number) | undefined;
  private readonly minYieldBytes: number;
  private readonly quietMs: number;
  private readonly minIntervalMs: number;
  private readonly maxIntervalMs: number;
  private readonly lightTouches: number;
  private readonly maxDelayMs: number;
  private readonly collect: (idle: boolean) => void;
  private readonly codeRelease: CodeRelease;
  private readonly now: () => number;
  collections = 0;
  /** Idle collections not made because another IdleGc of the process made one since the last touch. */
  covered = 0;

  constructor(o: IdleGcOptions = {}) {
    this.quietMs = o.quietMs ?? 2000;
    this.minIntervalMs = o.minIntervalMs ?? 30_000;
    this.maxIntervalMs = Math.max(this.minIntervalMs, o.maxIntervalMs ?? 240_000);
    this.lightTouches = o.lightTouches ?? 2;
    this.maxDelayMs = o.maxDelayMs ?? 30_000;
    this.collect = o.collect ?? collectIdle;
    this.codeRelease = o.codeRelease ?? processCodeRelease;
    this.now = o.now ?? Date.now;
    this.heapBytes = o.heapBytes ?? (o.collect ? undefined : heapSize);
    this.minYieldBytes = o.minYieldBytes ?? 1024 * 1024;
    this.floorMs = this.minIntervalMs;
  }

  /** The current floor between collections (ms). */
  get intervalMs(): number {
    return this.floorMs;
  }

  /**
   * Work happened: the one collection waits for the process to go quiet, or for its deadline.
   * Called per event on busy paths (every sensor batch, every host request), so it moves no timer:
   * a timer that fires after a later touch looks at the clock again and waits out the rest (a
   * clearTimeout + setTimeout per touch was 5 % of a busy supervisor's main thread).
   */
  touch(): void {
    const now = this.now();
    this.lastTouch = now;
    this.touches++;
    this.touchSeq++;
    this.idleSeqAtTouch = processCollections.idle;
    this.followUp = false;
    // Real work after a stretch of housekeeping: back to the short floor at once, not after the
    // long one has run out. Not when the last collection found these touches' garbage worthless.
    if (this.floorMs > this.minIntervalMs && !this.stretchedByYield && !this.light(now)) {
      this.floorMs = this.minIntervalMs;
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (!this.timer) {
      this.dueBy = Math.max(now, this.lastAt + this.floorMs) + this.maxDelayMs;
      this.arm(this.waitFrom(now));
    }
    // The floor may put the collection seconds or minutes off. The code pages this touch's work
    // faulted in cost nothing to give back (the collection is what costs): so they go once the
    // process has been quiet for a while, whenever the collection comes (code-release.ts).
    this.codeRelease.used();
  }

  /** How long from `now` until the collection is due: quiet for quietMs and past the floor, or the deadline. */
  private waitFrom(now: number): number {
    const at = Math.min(Math.max(this.lastTouch + this.quietMs, this.lastAt + this.floorMs), this.dueBy);
    return Math.max(0, at - now);
  }

  /**
   * Garbage worth returning now — a content switch just dropped its staged payload (a host's
   * commit, discard, unload): one collection within quietMs, whatever minIntervalMs says.
   */
  soon(): void {
    const now = this.now();
    this.floorMs = this.minIntervalMs;
    this.stretchedByYield = false;
    this.dropped = true;
    this.dueBy = Math.min(this.dueBy, now + this.quietMs);
    if (this.timer) clearTimeout(this.timer);
    this.arm(Math.max(0, this.dueBy - now), true);
  }

  /** At most `lightTouches` touches per minIntervalMs, on average, since the last collection. */
  private light(now: number): boolean {
    return this.touches <= this.lightTouches * this.windows(now);
  }

  /** How many minIntervalMs since the last collection (at least one). */
  private windows(now: number): number {
    return Number.isFinite(this.lastAt) ? Math.max(1, (now - this.lastAt) / this.minIntervalMs) : 1;
  }

  /** `exact`: fire at `wait` whatever touches come meanwhile (soon(): its collection is due by then). */
  private arm(wait: number, exact = false): void {
    const seq = this.touchSeq;
    this.timer = setTimeout(() => {
      const now = this.now();
      // Touched since this timer was set: the collection waits for quiet after that touch.
      if (!exact && this.touchSeq !== seq) {
        const left = this.waitFrom(now);
        if (left > 0) return this.arm(left);
      }
      const followUp = this.followUp;
      const idle = now - this.lastTouch >= this.quietMs;
      // Another IdleGc of this process made an idle collection after our last touch: it was ours too.
      if (idle && !this.dropped && processCollections.idle > this.idleSeqAtTouch) {
        this.startWindow(now);
        this.followUp = false;
        this.covered++;
        return;
      }
      // Light traffic between two idle collections (a status refresh, a safety-net poll) leaves
      // little garbage, yet each collection costs a full mark of the heap, the shrink's re-JIT and
      // the code pages faulted back in: so the floor doubles while traffic stays light, or while
      // collections give nothing back. Anything more — a deadline collection of busy work, soon(),
      // more touches after a collection that did give memory back — resets it.
      const judged = idle && !followUp && !this.dropped && Number.isFinite(this.lastAt);
      const light = judged && this.light(now);
      const windows = this.windows(now);
      this.startWindow(now);
      this.dropped = false;
      this.collections++;
      const before = idle ? this.heapBytes?.() : undefined;
      this.collect(idle);
      if (idle) processCollections.idle++;
      // The collection gave the pages back, but its aftermath (the sweeper, the shrink) runs once this
      // callback has returned and faults 5–9 MiB back in: they go again once that is over.
      if (idle) this.codeRelease.used();
      // Per floor's worth of time, like the touches: garbage of a longer window is more garbage.
      const worthless =
        judged && before !== undefined && before - this.heapBytes!() < this.minYieldBytes * windows;
      this.stretchedByYield = worthless && !light;
      this.floorMs = light || worthless ? Math.min(this.floorMs * 2, this.maxIntervalMs) : this.minIntervalMs;
      // A collection of busy work (a deadline, or soon() amid requests) may be the process's last
      // before it goes quiet for good, and nothing would then give it the idle one: it kept its
      // compiled code and its executable's pages for ever (the IPS host, idle after its content
      // load, kept 41 MiB of the executable mapped). So one more at the floor's pace; a touch re-arms
      // as usual.
      this.followUp = false;
      if (!idle && !followUp) {
        this.dueBy = this.lastAt + this.floorMs + this.maxDelayMs;
        this.followUp = true;
        this.arm(Math.max(this.quietMs, this.floorMs));
      }
    }, wait);
    this.timer.unref?.();
  }

  /** A collection (made, or covered by another's) at `now`: the next window starts empty. */
  private startWindow(now: number): void {
    this.timer = undefined;
    this.dueBy = Number.POSITIVE_INFINITY;
    this.lastAt = now;
    this.touches = 0;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.dueBy = Number.POSITIVE_INFINITY;
  }
}
