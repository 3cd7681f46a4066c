/**
 * File sensor: changes under `sensors.files.paths` as file.write (closed
 * after writing), file.create, file.rename, file.delete and file.chmod
 * events on the bus, for Behavior rules (cron, sudoers, authorized_keys,
 * systemd units…).
 *
 * Source: fanotify in FID mode (FAN_REPORT_DFID_NAME, Linux ≥ 5.9): events
 * name the directory by its kernel file handle plus the entry name, so we
 * keep a map handle → directory, filled when each directory is marked
 * (name_to_handle_at) and when a new subdirectory appears. FAN_RENAME (≥ 5.17)
 * gives old and new name in one event. Marks are inode marks on each
 * watched directory (not FAN_MARK_FILESYSTEM: a rule set watches a few
 * directories, and a filesystem mark would make the kernel queue every
 * write on the disk for us to throw away). inotify is the fallback when
 * fanotify is refused (no CAP_SYS_ADMIN, old kernel); it names the same
 * events by watch descriptor, and pairs renames by cookie. A watched path
 * that is a file watches its directory, filtered to that name.
 */
import { readdirSync, readlinkSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { SensorEvent } from "./bus.ts";
import { closeFd, fanotifyInit, fanotifyMark, fileHandleKey, inotifyAddWatch, inotifyInit } from "./libc.ts";
import { FAN, FAN_INIT, FAN_MARK, type FanRecord, IN, type InotifyRecord } from "./parse.ts";
import { SensorReader } from "./reader.ts";

export interface FileSensorOptions {
  paths: string[];
  publish: (events: SensorEvent[]) => void;
  /** "auto": fanotify, inotify if refused; tests may force one. */
  source?: "auto" | "fanotify" | "inotify";
  maxDirs?: number;
  /** Names a writer that is already gone from /proc (the process sensor remembers recent execs). */
  exeOf?: (pid: number) => string | undefined;
}

const FAN_MASK =
  FAN.CLOSE_WRITE | FAN.CREATE | FAN.DELETE | FAN.RENAME | FAN.ATTRIB | FAN.ONDIR | FAN.EVENT_ON_CHILD;
const IN_MASK = IN.CLOSE_WRITE | IN.CREATE | IN.DELETE | IN.MOVED_FROM | IN.MOVED_TO | IN.ATTRIB;

export class FileSensor {
  sensor: "fanotify" | "inotify" | "off" = "off";
  reason: string | undefined;
  private fd = -1;
  private fanReader: SensorReader<FanRecord> | undefined;
  private inReader: SensorReader<InotifyRecord> | undefined;
  /** fanotify: handle key → directory; inotify: wd → directory. */
  private readonly dirs = new Map<string, string>();
  /** Directory → names watched in it (a file path given in config); absent: every name. */
  private readonly only = new Map<string, Set<string>>();
  private readonly moves = new Map<number, string>();
  readonly counters = { events: 0, dirs: 0, unresolved: 0, overflow: 0 };

  constructor(private readonly o: FileSensorOptions) {}

  start(): void {
    if (this.o.paths.length === 0) return;
    const source = this.o.source ?? "auto";
    if (source !== "inotify") {
      const why = this.startFanotify();
      if (!why) {
        this.sensor = "fanotify";
        return;
      }
      this.reason = `fanotify unavailable (${why}); using inotify`;
      if (source === "fanotify") return;
    }
    const why = this.startInotify();
    if (why) this.reason = `${this.reason ? `${this.reason}; ` : ""}inotify failed: ${why}`;
    else this.sensor = "inotify";
  }

  private targets(): string[] {
    const dirs: string[] = [];
    for (const p of this.o.paths) {
      let isDir = false;
      try {
        isDir = statSync(p).isDirectory();
      } catch {
        // A file that does not exist yet (e.g. /etc/sudoers.d/x) is watched through its directory.
      }
      if (isDir) dirs.push(p);
      else {
        const d = dirname(p);
        const set = this.only.get(d) ?? new Set<string>();
        set.add(basename(p));
        this.only.set(d, set);
        dirs.push(d);
      }
    }
    return dirs;
  }

  private startFanotify(): string | undefined {
    const fd = fanotifyInit(FAN_INIT.CLOEXEC | FAN_INIT.CLASS_NOTIF | FAN_INIT.REPORT_DFID_NAME, 0);
    if (fd < 0) return `fanotify_init(FAN_REPORT_DFID_NAME) failed (errno ${-fd})`;
    this.fd = fd;
    for (const d of this.targets()) this.markTree(d, !this.only.has(d));
    if (this.counters.dirs === 0) {
      closeFd(fd);
      this.fd = -1;
      this.dirs.clear();
      return "no watched directory could be marked";
    }
    this.fanReader = new SensorReader<FanRecord>(fd, { kind: "fanotify" }, (r) => this.onFan(r));
    this.fanReader.start();
    return undefined;
  }

  private markTree(root: string, recurse: boolean): void {
    const stack = [root];
    while (stack.length > 0 && this.counters.dirs < (this.o.maxDirs ?? 4096)) {
      const dir = stack.pop()!;
      if (!this.markDir(dir)) continue;
      if (!recurse) continue;
      try {
        for (const d of readdirSync(dir, { withFileTypes: true }))
          if (d.isDirectory()) stack.push(join(dir, d.name));
      } catch {}
    }
  }

  private markDir(dir: string): boolean {
    if (this.sensor === "inotify" || this.inReader) {
      const wd = inotifyAddWatch(this.fd, dir, IN_MASK);
      if (wd < 0) return false;
      this.dirs.set(String(wd), dir);
      this.counters.dirs++;
      return true;
    }
    const key = fileHandleKey(dir);
    if (typeof key === "number") return false;
    if (fanotifyMark(this.fd, FAN_MARK.ADD | FAN_MARK.ONLYDIR, FAN_MASK, dir) < 0) return false;
    this.dirs.set(key, dir);
    this.counters.dirs++;
    return true;
  }

  private startInotify(): string | undefined {
    const fd = inotifyInit();
    if (fd < 0) return `inotify_init1 failed (errno ${-fd})`;
    this.fd = fd;
    this.inReader = new SensorReader<InotifyRecord>(fd, { kind: "inotify" }, (r) => this.onInotify(r));
    for (const d of this.targets()) this.markTree(d, !this.only.has(d));
    this.inReader.start();
    return this.counters.dirs === 0 ? "no watched directory could be watched" : undefined;
  }

  private wanted(dir: string, name: string): boolean {
    const only = this.only.get(dir);
    return !only || only.has(name);
  }

  private onFan(records: FanRecord[]): void {
    const out: SensorEvent[] = [];
    for (const r of records) {
      if (r.mask & FAN.Q_OVERFLOW) {
        this.counters.overflow++;
        continue;
      }
      const dir = r.dir ? this.dirs.get(r.dir) : undefined;
      if (!dir || r.name === undefined) {
        this.counters.unresolved++;
        continue;
      }
      const path = join(dir, r.name);
      const isDir = (r.mask & FAN.ONDIR) !== 0;
      if (isDir && r.mask & (FAN.CREATE | FAN.RENAME) && !this.only.has(dir)) this.markTree(path, true);
      if (!this.wanted(dir, r.name)) continue;
      const base = { time: Date.now(), path, pid: r.pid, exe: exeOf(r.pid) || this.o.exeOf?.(r.pid) || "" };
      if (r.mask & FAN.RENAME) {
        const from = r.oldDir && this.dirs.get(r.oldDir);
        out.push({ type: "file.rename", ...base, from: from ? join(from, r.oldName ?? "") : "" });
      }
      if (isDir) continue;
      if (r.mask & FAN.CREATE) out.push({ type: "file.create", ...base });
      if (r.mask & FAN.CLOSE_WRITE) out.push({ type: "file.write", ...base, bytes: sizeOf(path) });
      if (r.mask & FAN.ATTRIB) out.push({ type: "file.chmod", ...base, mode: modeOf(path) });
      if (r.mask & FAN.DELETE) out.push({ type: "file.delete", ...base });
    }
    this.emit(out);
  }

  private onInotify(records: InotifyRecord[]): void {
    const out: SensorEvent[] = [];
    for (const r of records) {
      if (r.mask & IN.Q_OVERFLOW) {
        this.counters.overflow++;
        continue;
      }
      const dir = this.dirs.get(String(r.wd));
      if (!dir) {
        this.counters.unresolved++;
        continue;
      }
      const path = join(dir, r.name);
      const isDir = (r.mask & IN.ISDIR) !== 0;
      if (isDir && r.mask & (IN.CREATE | IN.MOVED_TO) && !this.only.has(dir)) this.markTree(path, true);
      if (r.mask & IN.MOVED_FROM) {
        if (this.moves.size > 1024) this.moves.clear();
        this.moves.set(r.cookie, path);
      }
      if (!this.wanted(dir, r.name) || isDir) continue;
      // inotify does not say who did it.
      const base = { time: Date.now(), path, pid: 0, exe: "" };
      if (r.mask & IN.MOVED_TO) {
        out.push({ type: "file.rename", ...base, from: this.moves.get(r.cookie) ?? "" });
        this.moves.delete(r.cookie);
      }
      if (r.mask & IN.CREATE) out.push({ type: "file.create", ...base });
      if (r.mask & IN.CLOSE_WRITE) out.push({ type: "file.write", ...base, bytes: sizeOf(path) });
      if (r.mask & IN.ATTRIB) out.push({ type: "file.chmod", ...base, mode: modeOf(path) });
      if (r.mask & IN.DELETE) out.push({ type: "file.delete", ...base });
    }
    this.emit(out);
  }

  private emit(out: SensorEvent[]): void {
    this.counters.events += out.length;
    const unnamed = out.filter((e) => e.exe === "" && typeof e.pid === "number" && e.pid > 0);
    if (unnamed.length === 0 || !this.o.exeOf) {
      this.o.publish(out);
      return;
    }
    // A writer that exited at once: its exec may still be on its way through the process sensor
    // (another reader thread). Wait briefly for it rather than publish a nameless writer.
    setTimeout(() => {
      for (const e of unnamed) e.exe = this.o.exeOf?.(e.pid as number) ?? "";
      this.o.publish(out);
    }, 100);
  }

  status(): Record<string, unknown> {
    const r = (this.fanReader ?? this.inReader)?.stats();
    return {
      sensor: this.sensor,
      ...(this.reason ? { reason: this.reason } : {}),
      paths: this.o.paths,
      ...this.counters,
      ...(r ? { dropped: r.dropped } : {}),
    };
  }

  async stop(): Promise<void> {
    await this.fanReader?.stop();
    await this.inReader?.stop();
    this.fanReader = undefined;
    this.inReader = undefined;
    this.sensor = "off";
  }
}

function exeOf(pid: number): string {
  if (pid <= 0) return "";
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return "";
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}

function modeOf(path: string): string {
  try {
    return (statSync(path).mode & 0o7777).toString(8);
  } catch {
    return "";
  }
}
