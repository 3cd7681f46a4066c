/**
 * The executable of each exec, race-free: a fanotify FAN_OPEN_EXEC mark on
 * every real filesystem hands us an fd on the very file the kernel is
 * executing, with the pid, before the process runs a single instruction.
 * The process connector tells us an exec happened; this tells us what ran,
 * even for a process that exits a millisecond later (its /proc entry is
 * gone by then). One exec can open several files (a script, then its
 * interpreter, then ld.so): the first per pid is the program, the rest are
 * closed.
 */
import { closeSync, readFileSync } from "node:fs";
import { PSEUDO_FILESYSTEMS, unescapeMountField } from "../mounts.ts";
import { closeFd, fanotifyInit, fanotifyMark } from "./libc.ts";
import { FAN, FAN_INIT, FAN_MARK, type FanRecord } from "./parse.ts";
import { SensorReader } from "./reader.ts";

interface Held {
  fds: number[];
  at: number;
}

export class ExecFiles {
  private fd = -1;
  private reader: SensorReader<FanRecord> | undefined;
  private readonly byPid = new Map<number, Held>();
  private readonly waiters = new Map<number, (fd: number | undefined) => void>();
  /** pid → when its program file was claimed: opens right after are its interpreter, not a new exec. */
  private readonly claimed = new Map<number, number>();
  readonly counters = { opens: 0, matched: 0, extra: 0, expired: 0, marks: 0 };

  start(): string | undefined {
    const fd = fanotifyInit(FAN_INIT.CLOEXEC | FAN_INIT.CLASS_NOTIF | FAN_INIT.UNLIMITED_QUEUE, 0o100000);
    if (fd < 0) return `fanotify_init failed (errno ${-fd})`;
    this.fd = fd;
    const seen = new Set<string>();
    for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
      const f = line.split(" ");
      const sep = f.indexOf("-");
      const dev = f[2];
      const fstype = f[sep + 1];
      const mnt = f[4] === undefined ? undefined : unescapeMountField(f[4]);
      if (!dev || !mnt || !fstype || PSEUDO_FILESYSTEMS.has(fstype) || seen.has(dev)) continue;
      if (fanotifyMark(fd, FAN_MARK.ADD | FAN_MARK.FILESYSTEM, FAN.OPEN_EXEC, mnt) >= 0) {
        seen.add(dev);
        this.counters.marks++;
      }
    }
    if (this.counters.marks === 0) {
      closeFd(fd);
      this.fd = -1;
      return "no filesystem accepted an exec mark";
    }
    this.reader = new SensorReader<FanRecord>(fd, { kind: "fanotify", maxInFlight: 8 }, (r) =>
      this.onRecords(r),
    );
    this.reader.start();
    return undefined;
  }

  get running(): boolean {
    return this.reader !== undefined;
  }

  private onRecords(records: FanRecord[]): void {
    const now = Date.now();
    for (const r of records) {
      if (r.fd < 0) continue;
      this.counters.opens++;
      const waiter = this.waiters.get(r.pid);
      if (waiter) {
        this.waiters.delete(r.pid);
        this.counters.matched++;
        waiter(r.fd);
        continue;
      }
      const claimedAt = this.claimed.get(r.pid);
      if (claimedAt !== undefined && now - claimedAt < 50) {
        this.counters.extra++;
        close(r.fd);
        continue;
      }
      const held = this.byPid.get(r.pid);
      if (held) {
        held.fds.push(r.fd);
        continue;
      }
      this.byPid.set(r.pid, { fds: [r.fd], at: now });
    }
    this.expire(now);
  }

  /** Files of execs nobody claimed within a second (an exec the connector dropped, or ours): closed. */
  private expire(now: number): void {
    for (const [pid, h] of this.byPid) {
      if (now - h.at < 1000 && this.byPid.size < 4096) break;
      this.byPid.delete(pid);
      this.counters.expired++;
      for (const fd of h.fds) close(fd);
    }
  }

  /**
   * The program file of `pid`'s exec: at once if it already arrived, else
   * within waitMs (the two sensors are read by different threads), else
   * undefined. The caller owns (and closes) the fd.
   */
  take(pid: number, waitMs: number): Promise<number | undefined> | number | undefined {
    if (this.claimed.size > 4096) this.claimed.clear();
    this.claimed.set(pid, Date.now());
    const held = this.byPid.get(pid);
    if (held) {
      this.byPid.delete(pid);
      this.counters.matched++;
      const [first, ...rest] = held.fds;
      this.counters.extra += rest.length;
      for (const fd of rest) close(fd);
      return first;
    }
    if (!this.reader) return undefined;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(pid);
        resolve(undefined);
      }, waitMs);
      this.waiters.set(pid, (fd) => {
        clearTimeout(timer);
        this.claimed.set(pid, Date.now());
        resolve(fd);
      });
    });
  }

  stats(): Record<string, number> {
    return { ...this.counters, held: this.byPid.size, ...(this.reader?.stats() ?? {}) };
  }

  async stop(): Promise<void> {
    for (const w of this.waiters.values()) w(undefined);
    this.waiters.clear();
    for (const h of this.byPid.values()) for (const fd of h.fds) close(fd);
    this.byPid.clear();
    await this.reader?.stop();
    this.reader = undefined;
  }
}

function close(fd: number): void {
  try {
    closeSync(fd);
  } catch {}
}
