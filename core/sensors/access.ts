/**
 * File-access sensor for on-access scanning: a fanotify group in content
 * class, marked on the configured paths, that hands each open (block mode:
 * FAN_OPEN_PERM / FAN_OPEN_EXEC_PERM, which hold the opener until we
 * answer) or each finished write and exec (detect mode: FAN_CLOSE_WRITE /
 * FAN_OPEN_EXEC) to a `decide` callback with an fd on the file.
 *
 * The answer to a permission event is guaranteed within timeoutMs: a timer
 * answers ALLOW if `decide` has not, and so does any error (fail-open: the
 * sensor must never hang the host); both are counted. Our own process and
 * its children (the host groups) are allowed at once, so the agent can
 * never wait on itself.
 *
 * Files the decider allowed can be put in an AllowCache (allow-cache.ts,
 * `allowFile`): the reader thread then answers later opens of the same,
 * unchanged file itself — no main-thread round trip. In block mode the
 * kernel is also told to stop reporting opens of it (an ignore mark,
 * ignore-marks.ts) until it is written; FAN_CLOSE_WRITE is subscribed for
 * that, to take the mark off after writes the kernel does not see as
 * modifications (shared writable mmap).
 *
 * Marks (access-marks.ts): every mount at or under a configured path gets
 * a mount mark (pseudo filesystems skipped, new mounts followed); a path
 * that is not a mount point gets inode marks on itself and its
 * subdirectories, new ones included, so a test's temp dir covers that dir
 * and nothing else on the machine.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, readlinkSync } from "node:fs";
import { AccessMarks } from "./access-marks.ts";
import { AllowCache, type FileIdentity } from "./allow-cache.ts";
import { DEFAULT_MAX_IGNORE_MARKS, IgnoreMarks } from "./ignore-marks.ts";
import { closeFd, fanotifyInit, writeFd } from "./libc.ts";
import { FAN, FAN_INIT, FAN_PERM_MASK, type FanRecord, fanResponse } from "./parse.ts";
import { SensorReader } from "./reader.ts";

export interface AccessEvent {
  fd: number;
  pid: number;
  path: string;
  /** "open" (block mode), "exec" (exec, either mode), "write" (detect mode: closed after writing). */
  kind: "open" | "exec" | "write";
  permission: boolean;
}

export interface AccessSensorOptions {
  mode: "detect" | "block";
  paths: string[];
  timeoutMs: number;
  /** Resolves to true to allow. Must not close ev.fd (the sensor does). */
  decide: (ev: AccessEvent) => Promise<boolean>;
  /** Permission events decided concurrently at most; the rest wait (bounded) or are allowed. */
  concurrency?: number;
  maxMarkedDirs?: number;
  /** Block mode: kernel ignore marks on files found clean, at most this many (0: none). */
  maxIgnoreMarks?: number;
  /** A file was closed after writing (block mode with ignore marks): forget verdicts on it as it is now. */
  onWritten?: (f: FileIdentity) => void;
}

/** How long "this pid is not one of ours" is trusted before /proc is read again. */
const NOT_SELF_TTL_MS = 250;

export class AccessSensor {
  private fd = -1;
  private reader: SensorReader<FanRecord> | undefined;
  private active = 0;
  private readonly waiting: FanRecord[] = [];
  private readonly selfPids = new Map<number, boolean>();
  /** Pids found not to be ours, until when that answer may be reused (performance.now() ms). */
  private readonly notSelfUntil = new Map<number, number>();
  private readonly allowed = new AllowCache();
  private ignore: IgnoreMarks | undefined;
  readonly counters = {
    events: 0,
    allowedSelf: 0,
    failOpen: 0,
    timeouts: 0,
    denied: 0,
    marks: 0,
    overflow: 0,
    /** Directory marks that could not be re-added after a flush (the directory went away, say). */
    remarkErrors: 0,
    /** Files found in a new directory that the decision queue had no room for. */
    existingNotQueued: 0,
  };
  private marks: AccessMarks | undefined;
  error: string | undefined;

  constructor(private readonly o: AccessSensorOptions) {}

  start(): string | undefined {
    const flags = FAN_INIT.CLOEXEC | FAN_INIT.CLASS_CONTENT | FAN_INIT.UNLIMITED_MARKS;
    const fd = fanotifyInit(flags, 0o100000 /* O_LARGEFILE */ | 0 /* O_RDONLY */);
    if (fd < 0)
      return `fanotify_init failed (errno ${-fd}; needs CAP_SYS_ADMIN and CONFIG_FANOTIFY_ACCESS_PERMISSIONS)`;
    this.fd = fd;
    const maxIgnore = this.o.maxIgnoreMarks ?? DEFAULT_MAX_IGNORE_MARKS;
    if (this.o.mode === "block" && maxIgnore > 0) this.ignore = new IgnoreMarks(fd, maxIgnore);
    this.marks = new AccessMarks({
      fd,
      mask: this.eventMask(),
      paths: this.o.paths,
      ...(this.o.maxMarkedDirs !== undefined ? { maxDirs: this.o.maxMarkedDirs } : {}),
      existing: (path) => this.scanExisting(path),
    });
    const problems = this.marks.start();
    this.counters.marks = this.marks.total;
    if (this.counters.marks === 0) {
      void this.marks.stop();
      this.marks = undefined;
      closeFd(fd);
      this.fd = -1;
      return `no path could be marked: ${problems.join("; ")}`;
    }
    this.reader = new SensorReader<FanRecord>(
      fd,
      {
        kind: "fanotify",
        // Permission events: answered on a thread that does nothing else (reader.ts, ownThread).
        ownThread: true,
        maxInFlight: 1024,
        allow: this.allowed.buffer,
        closeWriteRemovesIgnore: this.ignore !== undefined,
      },
      (records) => this.onRecords(records),
    );
    this.reader.start();
    return problems.length ? `some paths not marked: ${problems.join("; ")}` : undefined;
  }

  /**
   * A regular file that was already in a directory when we marked it (a tree moved in, or written
   * between mkdir and the mark): decided like a finished write, from our own open of it.
   */
  private scanExisting(path: string): void {
    if (this.fd < 0) return;
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    } catch {
      return; // gone again, or not a file we may open
    }
    const r: FanRecord = { fd, pid: 0, mask: FAN.CLOSE_WRITE };
    this.counters.events++;
    if (this.active < (this.o.concurrency ?? 4)) void this.handle(r);
    else if (this.waiting.length < 4096) this.waiting.push(r);
    else {
      this.counters.existingNotQueued++;
      closeSync(fd);
    }
  }

  private onRecords(records: FanRecord[]): void {
    for (const r of records) {
      if (r.mask & FAN.Q_OVERFLOW) {
        this.counters.overflow++;
        continue;
      }
      if (r.fd < 0) continue;
      if (this.ignore && r.mask & FAN.CLOSE_WRITE && !(r.mask & FAN_PERM_MASK)) {
        this.closedAfterWrite(r);
        continue;
      }
      this.counters.events++;
      if (this.isSelf(r.pid)) {
        this.counters.allowedSelf++;
        this.finish(r, true);
        continue;
      }
      if (this.active >= (this.o.concurrency ?? 4)) {
        if (this.waiting.length >= 4096) {
          this.counters.failOpen++;
          this.finish(r, true);
        } else this.waiting.push(r);
        continue;
      }
      void this.handle(r);
    }
  }

  private async handle(r: FanRecord): Promise<void> {
    this.active++;
    const permission = (r.mask & FAN_PERM_MASK) !== 0;
    let answered = false;
    const answer = (allow: boolean) => {
      if (answered) return;
      answered = true;
      if (permission) writeFd(this.fd, fanResponse(r.fd, allow));
      if (!allow) this.counters.denied++;
    };
    const timer = permission
      ? setTimeout(() => {
          if (answered) return;
          this.counters.timeouts++;
          this.counters.failOpen++;
          answer(true);
        }, this.o.timeoutMs)
      : undefined;
    try {
      let path = "";
      try {
        path = readlinkSync(`/proc/self/fd/${r.fd}`);
      } catch {}
      const kind =
        r.mask & (FAN.OPEN_EXEC | FAN.OPEN_EXEC_PERM) ? "exec" : r.mask & FAN.CLOSE_WRITE ? "write" : "open";
      const allow = await this.o.decide({ fd: r.fd, pid: r.pid, path, kind, permission });
      answer(allow);
    } catch {
      if (!answered) this.counters.failOpen++;
      answer(true);
    } finally {
      if (timer) clearTimeout(timer);
      try {
        closeSync(r.fd);
      } catch {}
      this.active--;
      const next = this.waiting.shift();
      if (next) void this.handle(next);
    }
  }

  /** Block mode: opens and execs; ignore marks need close-writes too (see ignore-marks.ts). Detect: writes, execs. */
  private eventMask(): number {
    if (this.o.mode !== "block") return FAN.CLOSE_WRITE | FAN.OPEN_EXEC;
    return FAN.OPEN_PERM | FAN.OPEN_EXEC_PERM | (this.ignore ? FAN.CLOSE_WRITE : 0);
  }

  /**
   * The file, as it is now (fstat of the event fd), may be allowed without asking `decide` again.
   * With `fd` (open on that file, in block mode) the kernel stops reporting its plain opens too.
   */
  allowFile(f: FileIdentity, fd?: number): void {
    this.allowed.add(f);
    if (fd !== undefined && this.fd >= 0) this.ignore?.add(fd, f);
  }

  /** Every file must be decided again (new content, a cache cleared). */
  forgetAllowed(): void {
    this.allowed.clear();
    if (this.ignore?.flush()) this.remarkInodes();
  }

  /**
   * FAN_MARK_FLUSH also dropped our directory marks: put them back (access-marks.ts). Opens in those
   * directories in the meantime (a syscall per marked directory) are not reported; mount marks are
   * unaffected.
   */
  private remarkInodes(): void {
    this.counters.remarkErrors += this.marks?.remarkInodes() ?? 0;
  }

  /**
   * A writer closed a file that carried an ignore mark (its last mapping included). The reader thread
   * took the mark off already; no verdict on the file as it is now survives either.
   */
  private closedAfterWrite(r: FanRecord): void {
    if (r.ignoreMarkRemoved) this.ignore?.removedElsewhere();
    else this.ignore?.remove(r.fd);
    try {
      const st = fstatSync(r.fd, { bigint: true });
      this.allowed.remove(st);
      this.o.onWritten?.(st);
    } catch {}
    this.finish(r, true);
  }

  private finish(r: FanRecord, allow: boolean): void {
    if (r.mask & FAN_PERM_MASK) writeFd(this.fd, fanResponse(r.fd, allow));
    try {
      closeSync(r.fd);
    } catch {}
  }

  /** The agent itself or one of its host processes (their parent is us). */
  private isSelf(pid: number, now = performance.now()): boolean {
    if (pid === process.pid) return true;
    if (this.selfPids.get(pid)) return true;
    // A reader such as `find -exec cat {} +` opens thousands of files under one pid: reading its
    // /proc/PID/stat each time cost ~9 µs per open. "Not ours" is remembered only briefly, because
    // the pid may be reused by one of our hosts — which needs the kernel to hand out every other pid
    // first (pid_max is 32,768 on small systems: > 130,000 forks/s to wrap within the window).
    const notMineUntil = this.notSelfUntil.get(pid);
    if (notMineUntil !== undefined && now < notMineUntil) return false;
    let mine = false;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      mine = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === process.pid;
    } catch {}
    if (this.selfPids.size > 4096) this.selfPids.clear();
    if (this.notSelfUntil.size > 4096) this.notSelfUntil.clear();
    if (mine) {
      this.selfPids.set(pid, true);
      this.notSelfUntil.delete(pid);
    } else this.notSelfUntil.set(pid, now + NOT_SELF_TTL_MS);
    return mine;
  }

  /** What is marked and what is not, and why (status `sensors.onAccess.marks`). */
  marking(): Record<string, unknown> | undefined {
    return this.marks?.status();
  }

  stats(): Record<string, unknown> {
    const r = this.reader?.stats() ?? {
      dropped: 0,
      kernelLost: 0,
      failOpen: 0,
      selfAllowed: 0,
      cacheAllowed: 0,
      closeWrites: 0,
    };
    if (this.marks) this.counters.marks = this.marks.total;
    return {
      ...this.counters,
      ...(this.ignore?.stats() ?? {}),
      /** Opens answered on the reader thread from the AllowCache (never reached `decide`). */
      cacheAllowed: r.cacheAllowed,
      allowedSelf: this.counters.allowedSelf + r.selfAllowed,
      /** FAN_CLOSE_WRITE notifications (block mode with ignore marks): not decisions, not in `events`. */
      closeWrites: r.closeWrites,
      failOpen: this.counters.failOpen + r.failOpen,
      dropped: r.dropped,
      pending: this.active + this.waiting.length,
    };
  }

  async stop(): Promise<void> {
    // Anything still waiting is allowed before the group goes away (closing it would too).
    await this.marks?.stop();
    for (const r of this.waiting.splice(0)) this.finish(r, true);
    await this.reader?.stop();
    this.reader = undefined;
    this.fd = -1;
  }
}
