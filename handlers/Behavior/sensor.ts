/**
 * The Linux event source: polls /proc (through the handler's read-only fs
 * capability for `/proc/**`) for processes that appeared since the last
 * poll (`process.start`) and for new established TCP connections in
 * /proc/net/tcp{,6} (`network.connect`). Polling needs no privileges and no
 * kernel interface beyond procfs; a process that lives shorter than one
 * interval can be missed, which docs/rules.md states. Processes and
 * connections that exist when the sensor starts are the baseline, not
 * events.
 */
import type { FsCapability } from "../../core/handler/contract.ts";
import type { BehaviorEvent } from "./events.ts";

export interface SensorOptions {
  procRoot?: string;
  intervalMs: number;
  processes: boolean;
  connections: boolean;
  now?: () => number;
}

const MAX_CMDLINE = 4096;

/** Polls a new process may stay pending while it still looks like its parent (forked, not yet exec'd). */
const EXEC_WAIT_POLLS = 3;

export class ProcSensor {
  private known = new Set<number>();
  private pending = new Map<number, number>();
  private sockets = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = true;
  readonly counters = { polls: 0, processStarts: 0, connections: 0, readErrors: 0 };

  constructor(
    private readonly fs: FsCapability,
    private readonly emit: (events: BehaviorEvent[]) => void,
    private readonly opts: SensorOptions,
  ) {}

  private get root(): string {
    return this.opts.procRoot ?? "/proc";
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : Date.now();
  }

  start(): void {
    this.stopped = false;
    this.known = new Set(this.pids());
    this.sockets = new Set(this.connections().map((c) => c.key));
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  get running(): boolean {
    return !this.stopped;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      try {
        const events = this.poll();
        if (events.length > 0) this.emit(events);
      } finally {
        this.schedule();
      }
    }, this.opts.intervalMs);
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** One poll: the events since the previous one. */
  poll(): BehaviorEvent[] {
    this.counters.polls++;
    const events: BehaviorEvent[] = [];
    const time = this.now();
    if (this.opts.processes) {
      const pids = this.pids();
      const known = new Set<number>();
      for (const pid of pids) {
        known.add(pid);
        if (this.known.has(pid) && !this.pending.has(pid)) continue;
        const e = this.describe(pid, time);
        if (!e) continue;
        // A child caught between fork and exec still shows its parent's command line: look again
        // next poll, so the event carries the program it runs.
        const waited = this.pending.get(pid) ?? 0;
        if (waited < EXEC_WAIT_POLLS && this.looksLikeParent(e)) {
          this.pending.set(pid, waited + 1);
          continue;
        }
        this.pending.delete(pid);
        events.push(e);
      }
      for (const pid of this.pending.keys()) if (!known.has(pid)) this.pending.delete(pid);
      // Forget exited processes, so a reused pid is seen again.
      this.known = known;
    }
    if (this.opts.connections) {
      const now = this.connections();
      for (const c of now) {
        if (this.sockets.has(c.key)) continue;
        const { key: _key, ...fields } = c;
        events.push({ type: "network.connect", time, ...fields });
      }
      this.sockets = new Set(now.map((c) => c.key));
    }
    this.counters.processStarts += events.filter((e) => e.type === "process.start").length;
    this.counters.connections += events.filter((e) => e.type === "network.connect").length;
    return events;
  }

  private looksLikeParent(e: BehaviorEvent): boolean {
    try {
      const parent = this.fs
        .readText(`${this.root}/${e.ppid}/cmdline`)
        .slice(0, MAX_CMDLINE)
        .split("\0")
        .filter(Boolean);
      return parent.join(" ") === e.cmdline;
    } catch {
      return false;
    }
  }

  private pids(): number[] {
    try {
      return this.fs
        .list(this.root)
        .filter((n) => /^\d+$/.test(n))
        .map(Number);
    } catch {
      this.counters.readErrors++;
      return [];
    }
  }

  private describe(pid: number, time: number): BehaviorEvent | undefined {
    try {
      const status = this.fs.readText(`${this.root}/${pid}/status`);
      const field = (name: string) => status.match(new RegExp(`^${name}:\\s*(.*)$`, "m"))?.[1]?.trim();
      const argv = this.fs
        .readText(`${this.root}/${pid}/cmdline`)
        .slice(0, MAX_CMDLINE)
        .split("\0")
        .filter((a) => a.length > 0);
      const name = field("Name") ?? "";
      return {
        type: "process.start",
        time,
        pid,
        ppid: Number(field("PPid") ?? 0),
        uid: Number((field("Uid") ?? "0").split(/\s+/)[0]),
        name,
        exe: argv[0] ?? name,
        cmdline: argv.join(" "),
      };
    } catch {
      // Gone before we could read it.
      return undefined;
    }
  }

  private connections(): {
    key: string;
    proto: string;
    local: string;
    lport: number;
    remote: string;
    rport: number;
    uid: number;
    inode: number;
  }[] {
    const out: ReturnType<ProcSensor["connections"]> = [];
    for (const proto of ["tcp", "tcp6"]) {
      let text: string;
      try {
        text = this.fs.readText(`${this.root}/net/${proto}`);
      } catch {
        continue;
      }
      for (const line of text.split("\n").slice(1)) {
        const f = line.trim().split(/\s+/);
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
        if (f.length < 10 || f[3] !== "01") continue;
        const local = parseAddress(f[1]!);
        const remote = parseAddress(f[2]!);
        if (!local || !remote) continue;
        const inode = Number(f[9]);
        out.push({
          key: `${proto}:${f[1]}:${f[2]}:${inode}`,
          proto,
          local: local.host,
          lport: local.port,
          remote: remote.host,
          rport: remote.port,
          uid: Number(f[7]),
          inode,
        });
      }
    }
    return out;
  }
}

/** procfs prints addresses as host-order hex words: 0100007F:1F90 is 127.0.0.1:8080. */
export function parseAddress(hex: string): { host: string; port: number } | undefined {
  const [addr, port] = hex.split(":");
  if (!addr || !port) return undefined;
  const words = addr.match(/.{8}/g);
  if (!words) return undefined;
  const bytes = words.flatMap((w) => (w.match(/../g) ?? []).reverse().map((b) => Number.parseInt(b, 16)));
  let host: string;
  if (bytes.length === 4) host = bytes.join(".");
  else {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
    host = groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::");
    const mapped = host.match(/^::ffff:([0-9a-f]+):([0-9a-f]+)$/);
    if (mapped) {
      const a = Number.parseInt(mapped[1]!, 16);
      const b = Number.parseInt(mapped[2]!, 16);
      host = `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
    }
  }
  return { host, port: Number.parseInt(port, 16) };
}
