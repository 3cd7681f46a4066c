/**
 * New directories under inode-marked on-access trees. The access group's
 * inode marks cover the directories that existed when it started; a
 * directory made (or moved in) later has no mark, so a file dropped in it
 * would never be scanned. This second fanotify group, in FID mode
 * (FAN_REPORT_DFID_NAME) with FAN_CREATE|FAN_MOVED_TO|FAN_ONDIR on every
 * marked directory, names each new subdirectory as (parent handle, name);
 * the access sensor then marks it (and what is already inside it).
 *
 * Why fanotify and not inotify: FAN_UNLIMITED_MARKS has no per-user watch
 * limit (inotify's max_user_watches can be below the 10,000-directory
 * bound), and the same handle map serves the file sensor (files.ts).
 * A queue overflow loses names: the whole tree is walked again.
 */
import { join } from "node:path";
import { closeFd, fanotifyInit, fanotifyMark, fileHandleKey } from "./libc.ts";
import { FAN, FAN_INIT, FAN_MARK, type FanRecord } from "./parse.ts";
import { SensorReader } from "./reader.ts";

const MASK = FAN.CREATE | FAN.MOVED_TO | FAN.ONDIR | FAN.EVENT_ON_CHILD;

export class NewDirWatcher {
  private fd = -1;
  private reader: SensorReader<FanRecord> | undefined;
  /** Handle key → directory path, for every directory watched. */
  private readonly dirs = new Map<string, string>();
  /** `notDirs`: records for files that reached this thread anyway (the reader thread should pass none). */
  readonly counters = { newDirs: 0, overflow: 0, unresolved: 0, notDirs: 0 };

  constructor(
    private readonly o: {
      /** A directory appeared at `path` (created or moved in). */
      onNewDir: (path: string) => void;
      /** Events were lost: every tree should be walked again. */
      onOverflow: () => void;
    },
  ) {}

  start(): string | undefined {
    const fd = fanotifyInit(
      FAN_INIT.CLOEXEC | FAN_INIT.CLASS_NOTIF | FAN_INIT.REPORT_DFID_NAME | FAN_INIT.UNLIMITED_MARKS,
      0,
    );
    if (fd < 0)
      return `fanotify_init(FAN_REPORT_DFID_NAME) failed (errno ${-fd}); new directories are not marked`;
    this.fd = fd;
    // FAN_CREATE reports files too (FAN_ONDIR only adds directories): a `cp -r` would wake the main
    // thread once per file for nothing, so the reader thread passes on directories and overflows only.
    this.reader = new SensorReader<FanRecord>(
      fd,
      { kind: "fanotify", keepMask: FAN.ONDIR | FAN.Q_OVERFLOW },
      (r) => this.onRecords(r),
    );
    this.reader.start();
    return undefined;
  }

  /**
   * Watches `dir` for new subdirectories: "new", "known" (watched already — a directory moved within
   * the tree keeps its handle, only its path is updated) or "unwatched" (no handle, mark refused).
   */
  watch(dir: string): "new" | "known" | "unwatched" {
    if (this.fd < 0) return "unwatched";
    const key = fileHandleKey(dir);
    if (typeof key === "number") return "unwatched";
    const known = this.dirs.has(key);
    this.dirs.set(key, dir);
    if (known) return "known";
    if (fanotifyMark(this.fd, FAN_MARK.ADD | FAN_MARK.ONLYDIR, MASK, dir) < 0) {
      this.dirs.delete(key);
      return "unwatched";
    }
    return "new";
  }

  private onRecords(records: FanRecord[]): void {
    for (const r of records) {
      if (r.mask & FAN.Q_OVERFLOW) {
        this.counters.overflow++;
        this.o.onOverflow();
        continue;
      }
      if (!(r.mask & FAN.ONDIR)) {
        this.counters.notDirs++;
        continue;
      }
      const parent = r.dir ? this.dirs.get(r.dir) : undefined;
      if (!parent || r.name === undefined) {
        this.counters.unresolved++;
        continue;
      }
      this.counters.newDirs++;
      this.o.onNewDir(join(parent, r.name));
    }
  }

  get watched(): number {
    return this.dirs.size;
  }

  async stop(): Promise<void> {
    if (this.reader) await this.reader.stop();
    else if (this.fd >= 0) closeFd(this.fd);
    this.reader = undefined;
    this.fd = -1;
  }
}
