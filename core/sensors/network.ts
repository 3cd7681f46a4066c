/**
 * Network sensor: every outgoing TCP connection attempt, published on the
 * sensor bus as `network.connect` — replacing Behavior's once-a-second
 * read of /proc/net/tcp{,6} (which cost CPU on an idle host and missed
 * connections shorter than a second).
 *
 * Source (docs/sensors.md, "Network events"): an nftables rule of ours,
 * `tcp flags & (syn|ack) == syn log group G` on the output hook of table
 * `inet outpost_sensors_G`, and a NETLINK_NETFILTER socket bound to that
 * nfnetlink_log group. The rule runs in the connect() caller's context, so
 * the kernel attaches the socket owner's uid; the packet copy (first 96
 * bytes) gives both addresses and ports. The kernel batches messages
 * (qthresh/timeout), the reader thread sleeps in poll() between batches.
 * Alternatives rejected on this class of kernel (no eBPF, cgroup v1):
 * sock_diag has no "socket created" multicast (only TCP destroy, since
 * 4.10); conntrack events need conntrack active in the namespace and carry
 * no uid; fanotify does not see sockets; audit needs auditd's rule set.
 * Without nft or nfnetlink_log the sensor is off, status says why, and
 * Behavior keeps polling /proc/net/tcp.
 *
 * The table is removed when the sensor stops and before it starts (a
 * crashed agent's leftover rule is replaced, never duplicated); it only
 * logs, it never drops.
 */
import type { SensorEvent } from "./bus.ts";
import { AF_NETLINK, bind, closeFd, pollIn, readFd, SOCK_CLOEXEC, send, socket } from "./libc.ts";
import {
  type ConnectRecord,
  NFULNL_CFG_CMD,
  netlinkAck,
  nflogBatch,
  nflogCmd,
  nflogConfigMessage,
  nflogCopyMode,
} from "./nflog-parse.ts";
import { SensorReader } from "./reader.ts";

export type NetworkMode = "auto" | "nflog" | "off";
/** Our table for `group` (one per group, so a second agent on the host never removes the first one's). */
export const nftSensorTable = (group: number) => `outpost_sensors_${group}`;
/** Groups tried after the configured one when another process holds it (a second agent, a test). */
const GROUP_TRIES = 16;
const SOCK_RAW = 3;
const NETLINK_NETFILTER = 12;

export type Runner = (cmd: string[], stdin?: string) => { code: number; stderr: string };

const spawnRunner: Runner = (cmd, stdin) => {
  try {
    const r = Bun.spawnSync(cmd, {
      stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
      stdout: "ignore",
      stderr: "pipe",
    });
    return { code: r.exitCode ?? 1, stderr: r.stderr.toString().trim() };
  } catch (e) {
    return { code: 127, stderr: (e as Error).message };
  }
};

/** The nft script that logs outgoing SYNs to `group` (pure: the unit test reads it). */
export function nflogScript(group: number): string {
  return [
    `table inet ${nftSensorTable(group)} {`,
    "  chain connect {",
    // After conntrack/NAT would rewrite nothing on output we care about; before any IPS queue (priority 0).
    "    type filter hook output priority -10; policy accept;",
    `    tcp flags & (syn | ack) == syn log group ${group}`,
    "  }",
    "}",
    "",
  ].join("\n");
}

export interface NetworkSensorOptions {
  mode: NetworkMode;
  /** nfnetlink_log group (0–65535) shared by nobody else on the host. */
  group: number;
  publish: (events: SensorEvent[]) => void;
  run?: Runner;
}

export class NetworkSensor {
  sensor: "nflog" | "off" = "off";
  reason: string | undefined;
  private reader: SensorReader<ConnectRecord> | undefined;
  private ruleInstalled = false;
  /** The nfnetlink_log group actually bound (the configured one unless it was taken). */
  group: number;
  readonly counters = { connects: 0 };
  private readonly run: Runner;

  constructor(private readonly o: NetworkSensorOptions) {
    this.run = o.run ?? spawnRunner;
    this.group = o.group;
  }

  /** Starts the kernel source when asked to; never throws (the reason is kept for status). */
  start(): void {
    if (this.o.mode === "off") {
      this.reason = "sensors.network is off";
      return;
    }
    const why = this.startNflog();
    if (why) {
      this.reason = `nfnetlink_log unavailable (${why}); Behavior polls /proc/net/tcp`;
      return;
    }
    this.sensor = "nflog";
  }

  private startNflog(): string | undefined {
    let fd: number;
    try {
      fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    } catch (e) {
      return (e as Error).message;
    }
    if (fd < 0) return `socket(NETLINK_NETFILTER) failed (errno ${-fd})`;
    const addr = new Uint8Array(12);
    new DataView(addr.buffer).setUint16(0, AF_NETLINK, true);
    const b = bind(fd, addr);
    if (b < 0) {
      closeFd(fd);
      return `bind failed (errno ${-b})`;
    }
    const g = this.bindGroup(fd);
    if (typeof g === "string") {
      closeFd(fd);
      return g;
    }
    this.group = g;
    // A crashed agent's table for this group is replaced, never duplicated.
    const nft = this.run(["nft", "-f", "-"], `${this.deleteScript()}${nflogScript(g)}`);
    if (nft.code !== 0) {
      // The delete fails when the table is absent; try the rule alone.
      const again = this.run(["nft", "-f", "-"], nflogScript(g));
      if (again.code !== 0) {
        closeFd(fd);
        return `nft: ${again.stderr || `exit ${again.code}`}`;
      }
    }
    this.ruleInstalled = true;
    this.reader = new SensorReader<ConnectRecord>(fd, { kind: "nflog" }, (r) => this.onRecords(r));
    try {
      this.reader.start();
    } catch (e) {
      this.reader = undefined;
      closeFd(fd);
      return (e as Error).message;
    }
    return undefined;
  }

  /** Binds the first free group from the configured one on; the group, or why none could be bound. */
  private bindGroup(fd: number): number | string {
    let seq = 1;
    let last = "";
    for (let g = this.o.group; g < Math.min(65_536, this.o.group + GROUP_TRIES); g++) {
      // A crashed agent's instance is gone with its socket; one held by a live process refuses us (EBUSY/EPERM).
      const err = this.request(fd, nflogConfigMessage(g, [nflogCmd(NFULNL_CFG_CMD.BIND)], ++seq), seq);
      if (err === 16 /* EBUSY */ || err === 1 /* EPERM */) {
        last = `group ${g} in use (errno ${err})`;
        continue;
      }
      if (err !== 0) return `bind of group ${g} failed (errno ${err}; needs CAP_NET_ADMIN)`;
      const steps: [string, Uint8Array[]][] = [
        ["mode", [nflogCopyMode(96)]],
        // Up to 64 packets or 50 ms per message: a burst of connects is one read.
        ["batch", nflogBatch(64, 5)],
      ];
      for (const [what, attrs] of steps) {
        const e = this.request(fd, nflogConfigMessage(g, attrs, ++seq), seq);
        if (e !== 0) return `${what} of group ${g} failed (errno ${e})`;
      }
      return g;
    }
    // EPERM is also what the kernel says to a caller without CAP_NET_ADMIN, for every group.
    return `no nfnetlink_log group from ${this.o.group} to ${this.o.group + GROUP_TRIES - 1} could be bound (${last}: held by another process, or no CAP_NET_ADMIN)`;
  }

  /** Sends one config request and waits (bounded) for its ACK: the errno, 0 on success. */
  private request(fd: number, msg: Uint8Array, seq: number): number {
    const s = send(fd, msg);
    if (s < 0) return -s;
    const buf = new Uint8Array(8192);
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline) {
      const ready = pollIn([fd], Math.max(1, deadline - Date.now()));
      if (typeof ready === "number" || ready.length === 0) break;
      const n = readFd(fd, buf);
      if (n < 0) return -n;
      const err = netlinkAck(buf, n, seq);
      if (err !== undefined) return err;
    }
    return 110; // ETIMEDOUT
  }

  private deleteScript(): string {
    return `delete table inet ${nftSensorTable(this.group)}\n`;
  }

  private removeRule(): void {
    this.run(["nft", "-f", "-"], this.deleteScript());
    this.ruleInstalled = false;
  }

  private onRecords(records: ConnectRecord[]): void {
    const out: SensorEvent[] = [];
    for (const r of records) {
      this.counters.connects++;
      out.push({
        type: "network.connect",
        time: r.ts || Date.now(),
        proto: r.proto,
        local: r.local,
        lport: r.lport,
        remote: r.remote,
        rport: r.rport,
        uid: r.uid,
      });
    }
    if (out.length > 0) this.o.publish(out);
  }

  status(): Record<string, unknown> {
    const s = this.reader?.stats();
    return {
      sensor: this.sensor,
      reason: this.reason ?? null,
      group: this.group,
      connects: this.counters.connects,
      dropped: s?.dropped ?? 0,
      kernelLost: s?.kernelLost ?? 0,
      error: this.reader?.error ?? null,
    };
  }

  async stop(): Promise<void> {
    await this.reader?.stop();
    this.reader = undefined;
    if (this.ruleInstalled) this.removeRule();
    this.sensor = "off";
  }
}
