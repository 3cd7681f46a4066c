/**
 * Process sensor: exec, fork and exit from the kernel, published on the
 * sensor bus as process.start / process.fork / process.exit.
 *
 * Source (docs/sensors.md, "Process events"): the netlink process connector
 * announces every fork, exec and exit (it never misses one short of a
 * socket-buffer overflow, which is counted). The connector carries only
 * pids, so the reader thread opens /proc/PID/exe and reads cmdline, cwd and
 * status the moment the exec arrives. The exe fd outlives the process, so
 * its hash (and so its LocalRepData tag) is exact even when the process is
 * already gone; a process that exits within a millisecond may lose its
 * cmdline, which the event says (`complete: false`) instead of guessing.
 * Audit (AUDIT_EXECVE) was not chosen: it means installing system-wide
 * audit rules that a running auditd owns and rewrites, and without auditd
 * the kernel prints every record to the console.
 *
 * `poll` (or `auto` when the connector cannot be opened: no CAP_NET_ADMIN,
 * CONFIG_PROC_EVENTS off, a network namespace) sweeps /proc every
 * intervalMs instead, and status says so and why.
 */
import { readdirSync, readlinkSync } from "node:fs";
import type { SensorEvent } from "./bus.ts";
import { ExeHasher } from "./exe-hash.ts";
import { ExecFiles } from "./exec-files.ts";
import {
  AF_NETLINK,
  bind,
  closeFd,
  NETLINK_CONNECTOR,
  SO_RCVBUFFORCE,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOL_SOCKET,
  send,
  setsockoptInt,
  socket,
} from "./libc.ts";
import { type ConnectorRecord, connectorAddress, connectorListenMessage } from "./parse.ts";
import { type ProcDetails, readProc } from "./proc-read.ts";
import { SensorReader } from "./reader.ts";

export type ProcessMode = "auto" | "netlink" | "fanotify" | "poll";

export interface ProcessSensorOptions {
  mode: ProcessMode;
  publish: (events: SensorEvent[]) => void;
  pollIntervalMs?: number;
  /** Hash executables (for reputation tags); off when nobody wants sha256. */
  hash?: boolean;
}

type Wire = ConnectorRecord & { proc?: ProcDetails | null };

const PARENTS_MAX = 65_536;

/**
 * How long an exec's start event waits for its program file from the fanotify reader thread. The two
 * readers run on different threads: quiet, the file is there within a millisecond, but on a loaded
 * machine (load 20 on 2 cores) the other thread ran 50–200 ms behind and execs lost their SHA-256.
 * Only this exec's event waits (it is published when the file lands); nothing else is held up.
 */
const EXEC_FILE_WAIT_MS = 750;

export class ProcessSensor {
  sensor: "netlink" | "poll" | "off" = "off";
  reason: string | undefined;
  private reader: SensorReader<Wire> | undefined;
  /** fanotify FAN_OPEN_EXEC: the executed file's fd per exec (auto and fanotify modes). */
  private execFiles: ExecFiles | undefined;
  execFilesReason: string | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private known = new Set<number>();
  /** pid → ppid from fork events, for execs whose process is already gone from /proc. */
  private readonly parents = new Map<number, number>();
  readonly hasher = new ExeHasher();
  /** pid → executable of recent execs, kept past the exit: a file event is often read after its writer died. */
  private readonly recentExe = new Map<number, string>();
  readonly counters = { execs: 0, forks: 0, exits: 0, incomplete: 0 };

  constructor(private readonly o: ProcessSensorOptions) {}

  /** Starts the best available source; never throws (the reason is kept for status). */
  start(): void {
    const want = this.o.mode;
    if (want === "netlink" || want === "auto" || want === "fanotify") {
      const why = this.startNetlink();
      if (!why) {
        this.sensor = "netlink";
        if (this.o.hash ?? true) {
          const files = new ExecFiles();
          this.execFilesReason = files.start();
          if (!this.execFilesReason) this.execFiles = files;
        }
        if (want === "fanotify")
          this.reason = "fanotify exec events carry no fork/exit; using the process connector";
        return;
      }
      this.reason = `process connector unavailable: ${why}; polling /proc`;
    }
    this.startPoll();
  }

  private startNetlink(): string | undefined {
    let fd: number;
    try {
      fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
    } catch (e) {
      return (e as Error).message;
    }
    if (fd < 0) return `socket(NETLINK_CONNECTOR) failed (errno ${-fd})`;
    // A burst of 10k execs/s must fit in the socket buffer between two reads.
    setsockoptInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20);
    const b = bind(fd, connectorAddress());
    if (b < 0) {
      closeFd(fd);
      return `bind to the proc connector failed (errno ${-b}; needs CAP_NET_ADMIN)`;
    }
    const s = send(fd, connectorListenMessage());
    if (s < 0) {
      closeFd(fd);
      return `PROC_CN_MCAST_LISTEN failed (errno ${-s})`;
    }
    this.reader = new SensorReader<Wire>(
      fd,
      { kind: "connector", openExe: this.o.hash ?? true, maxInFlight: 8 },
      (r) => this.onRecords(r),
    );
    try {
      this.reader.start();
    } catch (e) {
      this.reader = undefined;
      closeFd(fd);
      return (e as Error).message;
    }
    return undefined;
  }

  private onRecords(records: Wire[]): void {
    const out: SensorEvent[] = [];
    for (const r of records) {
      const time = Date.now();
      if (r.what === "fork") {
        this.counters.forks++;
        if (this.parents.size >= PARENTS_MAX) this.parents.clear();
        this.parents.set(r.pid, r.ppid);
        out.push({ type: "process.fork", time, pid: r.pid, ppid: r.ppid });
      } else if (r.what === "exit") {
        this.counters.exits++;
        this.parents.delete(r.pid);
        out.push({ type: "process.exit", time, pid: r.pid, ppid: r.ppid, code: r.code });
      } else {
        this.counters.execs++;
        const proc = r.proc ?? null;
        // Taken now: the exit that follows in this batch forgets the parent.
        const ppid = this.parents.get(r.pid) ?? 0;
        const file = this.execFiles?.take(r.pid, EXEC_FILE_WAIT_MS);
        if (file instanceof Promise) {
          // The exec's file is still on its way from the other reader thread: publish when it lands.
          void file.then((fd) => this.o.publish([this.startEvent(r.pid, withExeFd(proc, fd), time, ppid)]));
        } else out.push(this.startEvent(r.pid, withExeFd(proc, file), time, ppid));
      }
    }
    this.o.publish(out);
  }

  private startEvent(pid: number, p: ProcDetails | null, time: number, forkParent = 0): SensorEvent {
    const sha256 = p?.exeFd !== undefined ? this.hasher.hashAndClose(p.exeFd) : null;
    const complete = !!p?.complete;
    if (p?.exe) {
      this.recentExe.delete(pid);
      this.recentExe.set(pid, p.exe);
      if (this.recentExe.size > 8192) this.recentExe.delete(this.recentExe.keys().next().value as number);
    }
    if (!complete) this.counters.incomplete++;
    return {
      type: "process.start",
      time,
      pid,
      ppid: p?.ppid || forkParent || this.parents.get(pid) || 0,
      uid: p?.uid ?? -1,
      name: p?.name ?? "",
      exe: p?.exe ?? "",
      cmdline: p?.cmdline ?? "",
      cwd: p?.cwd ?? "",
      sha256,
      startTicks: p?.startTicks ?? 0,
      complete,
    };
  }

  private startPoll(): void {
    this.sensor = "poll";
    this.known = new Set(this.pids());
    this.timer = setInterval(() => this.poll(), this.o.pollIntervalMs ?? 1000);
    this.timer.unref?.();
  }

  private pids(): number[] {
    try {
      return readdirSync("/proc")
        .filter((n) => /^\d+$/.test(n))
        .map(Number);
    } catch {
      return [];
    }
  }

  /** One /proc sweep (fallback only): processes that appeared since the last one. */
  poll(): void {
    const now = new Set(this.pids());
    const out: SensorEvent[] = [];
    for (const pid of now) {
      if (this.known.has(pid)) continue;
      const p = readProc(pid, { openExe: this.o.hash ?? true });
      if (!p) continue;
      this.counters.execs++;
      out.push(this.startEvent(pid, p, Date.now()));
    }
    this.known = now;
    this.o.publish(out);
  }

  /** The executable `pid` last exec'd, if seen recently. */
  exeOf(pid: number): string | undefined {
    return this.recentExe.get(pid);
  }

  status(): Record<string, unknown> {
    return {
      sensor: this.sensor,
      ...(this.reason ? { reason: this.reason } : {}),
      ...this.counters,
      ...(this.reader ? this.reader.stats() : {}),
      ...(this.reader?.error ? { error: this.reader.error } : {}),
      exeHashes: { ...this.hasher.stats },
      execFiles: this.execFiles ? this.execFiles.stats() : (this.execFilesReason ?? "off"),
    };
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.reader?.stop();
    await this.execFiles?.stop();
    this.reader = undefined;
    this.execFiles = undefined;
    this.sensor = "off";
  }
}

/** Prefers the fanotify fd (the exact file executed) over the one opened through /proc, closing the other. */
function withExeFd(p: ProcDetails | null, fd: number | undefined): ProcDetails | null {
  if (fd === undefined) return p;
  if (p?.exeFd !== undefined) closeFd(p.exeFd);
  let exe = p?.exe ?? "";
  if (!exe) {
    try {
      exe = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {}
  }
  // Gone from /proc entirely: what ran is still known from the file itself.
  const base: ProcDetails = p ?? {
    pid: 0,
    ppid: 0,
    uid: -1,
    name: "",
    exe,
    cmdline: "",
    cwd: "",
    startTicks: 0,
    complete: false,
  };
  return { ...base, exe, exeFd: fd };
}
