/**
 * Where the on-access group is marked, and keeping it so while the host
 * changes under it:
 * - every mount at or under a configured path gets a FAN_MARK_MOUNT mark
 *   (pseudo filesystems skipped, with the reason — mounts.ts), including
 *   mounts made after start (MountWatcher);
 * - a configured path that is not a mount point gets inode marks on itself
 *   and its subdirectories, stopping at mount points (those have their own
 *   mark, or are skipped), at most `maxDirs` directories in all;
 * - directories created or moved in under such a tree later are marked as
 *   they appear (NewDirWatcher), and the regular files already inside them
 *   are handed to `existing` to be scanned: a tree moved in, or a file
 *   written between mkdir and our mark.
 *
 * Race left: an open of a file in a brand-new directory between its mkdir
 * and our mark (one event round trip, typically well under a millisecond)
 * is not held in block mode; the file is still scanned by the walk and
 * reported. Mounts: the same between mount(2) and the mark.
 */
import { lstatSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fanotifyMark } from "./libc.ts";
import { isAtOrUnder, MountWatcher, mountsUnder, readMounts } from "./mounts.ts";
import { NewDirWatcher } from "./new-dirs.ts";
import { FAN, FAN_MARK } from "./parse.ts";

/** Files of one new directory tree handed over for scanning at most; the rest are counted. */
const MAX_EXISTING_FILES = 1024;

export interface AccessMarksOptions {
  fd: number;
  mask: number;
  paths: string[];
  maxDirs?: number;
  /** A regular file found in a directory that appeared after start (scan it). */
  existing: (path: string) => void;
}

export class AccessMarks {
  /** "id dev mountPoint" → mount point, for every mount marked. */
  private readonly mounts = new Map<string, string>();
  /** Mount point → why it is not marked (pseudo filesystem, mark refused). */
  private readonly unmarked = new Map<string, string>();
  private mountPoints = new Set<string>();
  private treeRoots: string[] = [];
  private synced = false;
  private readonly watcher: MountWatcher;
  private readonly dirWatcher: NewDirWatcher;
  private dirWatchProblem: string | undefined;
  /**
   * Every inode mark made (directories and single files, not mounts): FAN_MARK_FLUSH — how the
   * sensor drops its kernel ignore marks on new content (ignore-marks.ts) — drops these too.
   */
  private readonly inodeMarks: { path: string; mask: number }[] = [];
  readonly counters = {
    mountMarks: 0,
    dirMarks: 0,
    newMounts: 0,
    unmounted: 0,
    newDirs: 0,
    /** Directories not marked because the bound was reached. */
    dirsOverLimit: 0,
    existingFiles: 0,
    existingFilesNotScanned: 0,
  };

  constructor(private readonly o: AccessMarksOptions) {
    this.watcher = new MountWatcher(() => this.syncMounts());
    this.dirWatcher = new NewDirWatcher({
      onNewDir: (p) => this.onNewDir(p),
      onOverflow: () => {
        for (const r of this.treeRoots) this.markTree(r, false);
      },
    });
  }

  get maxDirs(): number {
    return this.o.maxDirs ?? 10_000;
  }

  /** Marks everything; returns a problem per path that could not be marked at all. */
  start(): string[] {
    const problems: string[] = [];
    const all = readMounts();
    this.mountPoints = new Set(all.map((m) => m.mountPoint));
    this.syncMounts(all);
    for (const p of this.o.paths) {
      if (this.mountPoints.has(p)) continue;
      let st: ReturnType<typeof statSync>;
      try {
        st = statSync(p);
      } catch (e) {
        problems.push(`${p}: ${(e as Error).message}`);
        continue;
      }
      if (!st.isDirectory()) {
        const r = fanotifyMark(this.o.fd, FAN_MARK.ADD, this.o.mask, p);
        if (r < 0) problems.push(`${p}: fanotify_mark failed (errno ${-r})`);
        else {
          this.counters.dirMarks++;
          this.inodeMarks.push({ path: p, mask: this.o.mask });
        }
        continue;
      }
      if (this.treeRoots.length === 0) this.dirWatchProblem = this.dirWatcher.start();
      this.treeRoots.push(p);
      const why = this.markTree(p, false);
      if (why) problems.push(why);
    }
    for (const p of this.o.paths)
      if (this.unmarked.has(p)) problems.push(`${p}: not marked (${this.unmarked.get(p)})`);
    const why = this.watcher.start();
    if (why) this.dirWatchProblem = [this.dirWatchProblem, why].filter(Boolean).join("; ");
    return problems;
  }

  /** After a FAN_MARK_FLUSH of inode marks: adds every one of them again; returns how many failed. */
  remarkInodes(): number {
    let failed = 0;
    for (const m of this.inodeMarks) if (fanotifyMark(this.o.fd, FAN_MARK.ADD, m.mask, m.path) < 0) failed++;
    return failed;
  }

  get total(): number {
    return this.counters.mountMarks + this.counters.dirMarks;
  }

  /** Marks mounts at or under the configured paths not marked yet; forgets those gone. */
  private syncMounts(all = readMounts()): void {
    this.mountPoints = new Set(all.map((m) => m.mountPoint));
    const { mark, skip } = mountsUnder(all, this.o.paths);
    // Mount ids are reused at once (a mount and unmount folded into one reread can show a new mount
    // under an old id), and even id + device + place can be a fresh mount of the same filesystem: so
    // every mount is marked again on every change. Adding a mark that is there is a no-op in the
    // kernel, one syscall per mount; the key only tells status what is new.
    const key = (m: { id: number; dev: string; mountPoint: string }) => `${m.id} ${m.dev} ${m.mountPoint}`;
    const present = new Set(all.map(key));
    for (const k of this.mounts.keys())
      if (!present.has(k)) {
        this.mounts.delete(k);
        this.counters.unmounted++;
      }
    for (const s of skip) this.unmarked.set(s.mountPoint, s.reason);
    for (const m of mark) {
      const r = fanotifyMark(this.o.fd, FAN_MARK.ADD | FAN_MARK.MOUNT, this.o.mask, m.mountPoint);
      if (r < 0) {
        this.unmarked.set(m.mountPoint, `${m.fsType}: fanotify_mark failed (errno ${-r})`);
        continue;
      }
      this.unmarked.delete(m.mountPoint);
      if (this.mounts.has(key(m))) continue;
      this.mounts.set(key(m), m.mountPoint);
      this.counters.mountMarks++;
      if (this.synced) this.counters.newMounts++;
    }
    this.synced = true;
    // A mount point that is gone is no longer a hole.
    for (const p of this.unmarked.keys()) if (!this.mountPoints.has(p)) this.unmarked.delete(p);
  }

  /**
   * Inode marks on `root` and the directories under it, not crossing into other mounts; each also
   * watched for new subdirectories. With `existing`, regular files found are handed over to be scanned.
   */
  private markTree(root: string, existing: boolean): string | undefined {
    const stack = [root];
    let files = 0;
    while (stack.length > 0) {
      const dir = stack.pop()!;
      if (dir !== root && this.mountPoints.has(dir)) continue;
      if (this.dirWatcher.watch(dir) !== "known") {
        if (this.counters.dirMarks >= this.maxDirs) {
          this.counters.dirsOverLimit += 1 + stack.length;
          return `${root}: more than ${this.maxDirs} directories; the rest are not marked`;
        }
        const mask = this.o.mask | FAN.EVENT_ON_CHILD;
        const r = fanotifyMark(this.o.fd, FAN_MARK.ADD, mask, dir);
        if (r < 0) return `${dir}: fanotify_mark failed (errno ${-r})`;
        this.counters.dirMarks++;
        this.inodeMarks.push({ path: dir, mask });
      }
      try {
        for (const d of readdirSync(dir, { withFileTypes: true })) {
          if (d.isDirectory()) stack.push(join(dir, d.name));
          else if (existing && d.isFile()) {
            if (files++ < MAX_EXISTING_FILES) {
              this.counters.existingFiles++;
              this.o.existing(join(dir, d.name));
            } else this.counters.existingFilesNotScanned++;
          }
        }
      } catch {}
    }
    return undefined;
  }

  private onNewDir(path: string): void {
    if (!this.treeRoots.some((r) => isAtOrUnder(path, r))) return;
    try {
      if (!lstatSync(path).isDirectory()) return;
    } catch {
      return; // already gone
    }
    this.counters.newDirs++;
    this.markTree(path, true);
  }

  status(): Record<string, unknown> {
    return {
      ...this.counters,
      dirsWatched: this.dirWatcher.watched,
      maxDirs: this.maxDirs,
      ...(this.counters.dirsOverLimit > 0
        ? {
            dirsNote: `more than ${this.maxDirs} directories under ${this.treeRoots.join(", ")}: ${this.counters.dirsOverLimit} not marked (mark the mount instead)`,
          }
        : {}),
      // A mount point listed twice in mountinfo (stacked mounts) is one mark on the top mount.
      mountsMarked: [...new Set(this.mounts.values())].sort(),
      mountsUnmarked: [...this.unmarked].map(([mountPoint, reason]) => ({ mountPoint, reason })),
      mountChanges: this.watcher.changes,
      ...(this.dirWatchProblem ? { watchProblem: this.dirWatchProblem } : {}),
      ...(this.watcher.error ? { mountWatchError: this.watcher.error } : {}),
    };
  }

  async stop(): Promise<void> {
    await this.watcher.stop();
    await this.dirWatcher.stop();
  }
}
