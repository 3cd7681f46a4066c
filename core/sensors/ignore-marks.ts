/**
 * The kernel's own verdict cache for block-mode on-access scanning: an
 * fanotify *ignore mark* (FAN_MARK_IGNORED_MASK with FAN_OPEN_PERM) on the
 * inode of a file the decider found clean, so the kernel stops reporting
 * opens of it at all — no event, no reader-thread wake-up, no answer.
 *
 * Why each guarantee holds:
 * - The ignore mask is cleared by the kernel on the inode's next modify
 *   event (we never set FAN_MARK_IGNORED_SURV_MODIFY), so write(2) and
 *   truncate put the file back in front of the decider.
 * - A write that raced the mark (after the decider's last fstat, before the
 *   mark existed) raised its modify event too early to clear it: after
 *   marking we fstat again and take the mark off if the file moved.
 * - Writes through a shared writable mmap raise no modify event. The access
 *   sensor therefore keeps FAN_OPEN_EXEC_PERM out of the ignore mask (an
 *   exec still reaches the AllowCache, which compares mtime/ctime/size) and
 *   removes the mark on FAN_CLOSE_WRITE (on the reader thread), which fires once the
 *   last writer — a mapping included — is gone. Left open: plain opens while
 *   a writer still holds a shared writable mapping (docs/sensors.md).
 * - New content forgets every verdict: `flush` drops all of the group's
 *   inode marks (FAN_MARK_FLUSH); the caller re-adds its directory marks.
 *
 * Inode marks pin their inode in memory, so they are bounded: past `max`
 * additions since the last flush none are added (status says `full`) and the
 * userspace AllowCache alone answers repeated opens. A kernel refusal is
 * counted with its errno and changes nothing else.
 */
import { fstatSync } from "node:fs";
import type { FileIdentity } from "./allow-cache.ts";
import { fanotifyMarkFd } from "./libc.ts";
import { FAN, FAN_MARK } from "./parse.ts";

export const DEFAULT_MAX_IGNORE_MARKS = 100_000;

export class IgnoreMarks {
  /** Marks added since the last flush and not removed by us: an upper bound on those alive. */
  private live = 0;
  private addedSinceFlush = 0;
  readonly counters = {
    added: 0,
    removed: 0,
    raced: 0,
    refused: 0,
    lastErrno: 0,
    flushes: 0,
    skippedFull: 0,
  };

  constructor(
    private readonly group: number,
    private readonly max = DEFAULT_MAX_IGNORE_MARKS,
  ) {}

  /** `fd` is open on the file the decider judged clean as `judged`. True if the kernel now ignores its opens. */
  add(fd: number, judged: FileIdentity): boolean {
    if (this.addedSinceFlush >= this.max) {
      this.counters.skippedFull++;
      return false;
    }
    const r = fanotifyMarkFd(this.group, FAN_MARK.ADD | FAN_MARK.IGNORED_MASK, FAN.OPEN_PERM, fd);
    if (r < 0) {
      this.counters.refused++;
      this.counters.lastErrno = -r;
      return false;
    }
    this.counters.added++;
    this.addedSinceFlush++;
    this.live++;
    if (!sameVersion(fd, judged)) {
      this.counters.raced++;
      this.remove(fd);
      return false;
    }
    return true;
  }

  /** The file behind `fd` was written: its opens are reported again. */
  remove(fd: number): void {
    if (this.live === 0) return; // nothing of ours to take off: spare the syscall
    const r = fanotifyMarkFd(this.group, FAN_MARK.REMOVE | FAN_MARK.IGNORED_MASK, FAN.OPEN_PERM, fd);
    if (r < 0) return; // ENOENT: no mark on this inode
    this.counters.removed++;
    this.live--;
  }

  /** The reader thread took one of our marks off (it handles FAN_CLOSE_WRITE first). */
  removedElsewhere(): void {
    this.counters.removed++;
    if (this.live > 0) this.live--;
  }

  /**
   * Drops every inode mark of the group — directory marks too, which the caller must re-add.
   * Returns false when there was nothing to drop (no ignore mark added since the last flush).
   */
  flush(): boolean {
    if (this.addedSinceFlush === 0) return false;
    const r = fanotifyMarkFd(this.group, FAN_MARK.FLUSH, 0, -100 /* AT_FDCWD, unused */);
    if (r < 0) {
      this.counters.refused++;
      this.counters.lastErrno = -r;
      return false;
    }
    this.counters.flushes++;
    this.addedSinceFlush = 0;
    this.live = 0;
    return true;
  }

  stats(): Record<string, number | boolean> {
    return {
      ignoreMarks: this.live,
      ignoreMarksMax: this.max,
      ignoreMarksFull: this.addedSinceFlush >= this.max,
      ignoreMarksAdded: this.counters.added,
      ignoreMarksRemoved: this.counters.removed,
      ignoreMarksRaced: this.counters.raced,
      ignoreMarksSkippedFull: this.counters.skippedFull,
      ignoreMarksFlushes: this.counters.flushes,
      ignoreMarkErrors: this.counters.refused,
      ignoreMarkLastErrno: this.counters.lastErrno,
    };
  }
}

function sameVersion(fd: number, f: FileIdentity): boolean {
  try {
    const st = fstatSync(fd, { bigint: true });
    return (
      st.ino === f.ino &&
      st.dev === f.dev &&
      st.mtimeNs === f.mtimeNs &&
      st.ctimeNs === f.ctimeNs &&
      st.size === f.size
    );
  } catch {
    return false;
  }
}
