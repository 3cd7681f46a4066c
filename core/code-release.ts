/**
 * When a process gives its executable's code pages back (core/code-pages.ts):
 * once it has been quiet for `quietMs` after it last ran something, and at
 * most once per `minGapMs` (issue 21, footprint).
 *
 * The pages go with every idle collection (idle-gc.ts), but a collection
 * needs a touch and waits out a floor of 30 s or more, and much of what a
 * process runs touches nothing: the supervisor's status refresh of every host
 * each 15 s, the status request it sends each host, the scanner's session
 * sweep. Each of those faulted in its code, with the kernel's 64 KiB fault-
 * around windows, and the pages stayed mapped until the next collection: idle
 * hosts held 7–15 MiB of the executable each. The collection's own aftermath
 * faults 5–9 MiB back in too — the sweeper and the shrink run once the
 * collection's callback has returned — in a process that may then stay quiet
 * for hours. So every such run calls `ranCode()`, and the pages go once the
 * process has been quiet again.
 *
 * Releasing costs one madvise; what costs is faulting the pages back in on
 * the next run, one minor fault per 64 KiB window it touches. `minGapMs`
 * bounds that: a process whose work comes every few seconds gives its pages
 * back at most every 10 s, not after each gap. Two demo agents side by side,
 * every group running: +30 ms of CPU per 180 s for the whole tree (+0.017 %
 * of a core, docs/handler-host.md). Timers are unref'd: a release never
 * keeps a process alive.
 */
import { releaseCodePages } from "./code-pages.ts";

export interface CodeReleaseOptions {
  /** Quiet time after the last run before the pages go. */
  quietMs?: number;
  /** The shortest time between two releases. */
  minGapMs?: number;
  release?: () => void;
  now?: () => number;
}

export class CodeRelease {
  private readonly quietMs: number;
  private readonly minGapMs: number;
  private readonly release: () => void;
  private readonly now: () => number;
  private lastUse = Number.NEGATIVE_INFINITY;
  private lastRelease = Number.NEGATIVE_INFINITY;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(o: CodeReleaseOptions = {}) {
    this.quietMs = o.quietMs ?? 2000;
    this.minGapMs = o.minGapMs ?? 10_000;
    this.release = o.release ?? releaseCodePages;
    this.now = o.now ?? Date.now;
  }

  /** Code ran: its pages go once the process has been quiet for quietMs (and minGapMs after the last release). */
  used(): void {
    this.lastUse = this.now();
    if (!this.timer) this.arm();
  }

  private dueAt(): number {
    return Math.max(this.lastUse + this.quietMs, this.lastRelease + this.minGapMs);
  }

  private arm(): void {
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        // Used again since the timer was set: the quiet spell starts from then.
        if (this.dueAt() > this.now()) return this.arm();
        this.lastRelease = this.now();
        this.release();
      },
      Math.max(0, this.dueAt() - this.now()),
    );
    this.timer.unref?.();
  }

  /** A release is waiting for the process to go quiet (tests). */
  get pending(): boolean {
    return this.timer !== undefined;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** The process's: every IdleGc and every `ranCode()` share it. */
export const processCodeRelease = new CodeRelease();

/** Work that touched no IdleGc ran code (a periodic job, a status request): see above. */
export function ranCode(): void {
  processCodeRelease.used();
}

/**
 * Minor faults since the last look that count as code having run: a one-second job with nothing to
 * do runs code that is mapped already and faults little; work that ran new code faults once per 64
 * KiB window of it (32 faults: up to 2 MiB of the executable mapped again).
 */
export const FAULTS_PER_RUN = 32;
let faultsSeen = 0;

/**
 * Looks at the process's minor-fault count where it wakes anyway (the ticker, core/ticker.ts), and
 * counts what faulted in since the last look as a run: that catches the work no caller names — the
 * replies to a status refresh, a control-plane request, a host restart. Anonymous memory the heap
 * takes faults too; a release it brings on costs one madvise, at most once per minGapMs.
 */
export function ranCodeIfFaulted(faults: () => number = () => process.resourceUsage().minorPageFault): void {
  const now = faults();
  if (now - faultsSeen >= FAULTS_PER_RUN) processCodeRelease.used();
  faultsSeen = now;
}
