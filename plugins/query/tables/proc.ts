/**
 * processes, process_open_sockets and listening_ports from procfs, with
 * osquery's Linux semantics (see osquery tables/system/linux/processes.cpp
 * and filesystem/linux/proc.cpp): CPU times in ms, sizes in bytes, TCP
 * states by name, one socket table per network namespace. A process that
 * exits mid-scan, or a file this uid may not read, yields empty cells —
 * never an error — as in osquery without root.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { GenContext, Row } from "./context.ts";
import { procSource } from "./proc-source.ts";

/** USER_HZ: fixed at 100 on every Linux architecture the agent ships for. */
const CLK_TCK = 100;
const MS_PER_TICK = 1000 / CLK_TCK;

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function _link(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return "";
  }
}

export function listPids(root: string): string[] {
  try {
    return readdirSync(`${root}/proc`).filter((n) => /^[0-9]+$/.test(n));
  } catch {
    return [];
  }
}

function bootTime(root: string): number {
  const m = /^btime (\d+)$/m.exec(read(`${root}/proc/stat`) ?? "");
  return m ? Number(m[1]) : 0;
}

/** Fields after the `(comm)` of /proc/PID/stat, index 0 = state. */
function statFields(text: string | undefined): string[] | undefined {
  if (!text) return undefined;
  const close = text.lastIndexOf(")");
  if (close < 0) return undefined;
  const f = text
    .slice(close + 2)
    .trim()
    .split(" ");
  return f.length > 19 ? f : undefined;
}

function statusMap(text: string | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of (text ?? "").split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}

function kbToBytes(v: string | undefined): number | null {
  const n = v ? Number.parseInt(v, 10) : Number.NaN;
  return Number.isFinite(n) ? n * 1024 : null;
}

function onDisk(path: string): { path: string; onDisk: number } {
  if (!path) return { path, onDisk: -1 };
  const deleted = " (deleted)";
  if (path.endsWith(deleted) && !existsSync(path)) return { path: path.slice(0, -deleted.length), onDisk: 0 };
  return { path, onDisk: existsSync(path) ? 1 : 0 };
}

function cgroupPath(text: string | undefined): string {
  if (!text) return "";
  const lines = text.split("\n").filter(Boolean);
  const v2 = lines.find((l) => l.startsWith("0::"));
  const line = v2 ?? lines[0] ?? "";
  return line.split(":").slice(2).join(":");
}

export function genProcesses(ctx: GenContext): Row[] {
  const root = ctx.root;
  const boot = ctx.wants("start_time") ? bootTime(root) : 0;
  const w = (c: string) => ctx.wants(c);
  const needStatus = [
    "name",
    "uid",
    "gid",
    "euid",
    "egid",
    "suid",
    "sgid",
    "resident_size",
    "total_size",
  ].some(w);
  const needIo = w("disk_bytes_read") || w("disk_bytes_written");
  const rows: Row[] = [];
  const src = procSource(ctx);
  for (const pid of ctx.pids ? ctx.pids.map(String) : listPids(root)) {
    const base = `${root}/proc/${pid}`;
    const stat = statFields(read(`${base}/stat`));
    // The process exited between readdir and here (or, asked for by pid, does not exist).
    if (!stat) continue;
    const status = needStatus || ctx.pids ? statusMap(read(`${base}/status`)) : new Map<string, string>();
    // /proc/<tid> of a thread opens too, but readdir never lists it: a thread is not a process row.
    if (ctx.pids && status.get("Tgid") !== pid) continue;
    const uids = (status.get("Uid") ?? "").split(/\s+/);
    const gids = (status.get("Gid") ?? "").split(/\s+/);
    const num = (v: string | undefined) => (v === undefined || v === "" ? null : Number(v));
    const exe = w("path") || w("on_disk") ? onDisk(src.link(pid, "exe") ?? "") : { path: "", onDisk: -1 };
    let io: Map<string, string> | undefined;
    if (needIo) io = statusMap(read(`${base}/io`));
    const startTicks = Number(stat[19]);
    rows.push({
      pid: Number(pid),
      name: status.get("Name") ?? "",
      path: exe.path,
      cmdline: w("cmdline") ? (read(`${base}/cmdline`) ?? "").replace(/\0+$/, "").replace(/\0/g, " ") : "",
      state: stat[0] ?? "",
      cwd: w("cwd") ? (src.link(pid, "cwd") ?? "") : "",
      root: w("root") ? (src.link(pid, "root") ?? "") : "",
      uid: num(uids[0]),
      gid: num(gids[0]),
      euid: num(uids[1]),
      egid: num(gids[1]),
      suid: num(uids[2]),
      sgid: num(gids[2]),
      on_disk: exe.onDisk,
      wired_size: 0,
      resident_size: kbToBytes(status.get("VmRSS")),
      total_size: kbToBytes(status.get("VmSize")),
      user_time: Number(stat[11]) * MS_PER_TICK,
      system_time: Number(stat[12]) * MS_PER_TICK,
      disk_bytes_read: io?.has("read_bytes") ? Number(io.get("read_bytes")) : io ? -1 : null,
      disk_bytes_written: io?.has("write_bytes")
        ? Number(io.get("write_bytes")) - Number(io.get("cancelled_write_bytes") ?? 0)
        : io
          ? -1
          : null,
      start_time: boot && Number.isFinite(startTicks) ? boot + Math.floor(startTicks / CLK_TCK) : -1,
      parent: Number(stat[1]),
      pgroup: Number(stat[2]),
      threads: Number(stat[17]),
      nice: Number(stat[16]),
      cgroup_path: w("cgroup_path") ? cgroupPath(read(`${base}/cgroup`)) : "",
    });
  }
  return rows;
}

const TCP_STATES = [
  "UNKNOWN",
  "ESTABLISHED",
  "SYN_SENT",
  "SYN_RECV",
  "FIN_WAIT1",
  "FIN_WAIT2",
  "TIME_WAIT",
  "CLOSED",
  "CLOSE_WAIT",
  "LAST_ACK",
  "LISTEN",
  "CLOSING",
];

const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

/** /proc/net hex address (host byte order per 32-bit word) → text. */
export function decodeAddress(hex: string, family: number): string {
  if (family === AF_INET) {
    const n = Number.parseInt(hex, 16);
    return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join(".");
  }
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let b = 3; b >= 0; b--) bytes.push(Number.parseInt(word.slice(b * 2, b * 2 + 2), 16));
  }
  return formatIpv6(bytes);
}

/** RFC 5952 text form (longest zero run compressed), with IPv4-mapped addresses as ::ffff:a.b.c.d. */
export function formatIpv6(bytes: number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff)
    return `::ffff:${bytes.slice(12).join(".")}`;
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

interface SocketInfo {
  socket: string;
  family: number;
  protocol: number;
  local_address: string;
  local_port: number;
  remote_address: string;
  remote_port: number;
  path: string;
  state: string;
  net_namespace: string;
}

function parseInet(text: string, family: number, protocol: number, ns: string, out: SocketInfo[]): void {
  const lines = text.split("\n");
  for (const line of lines.slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [la, lp] = (f[1] ?? "").split(":");
    const [ra, rp] = (f[2] ?? "").split(":");
    if (!la || !lp || !ra || !rp) continue;
    const st = Number.parseInt(f[3] ?? "", 16);
    out.push({
      socket: f[9] ?? "",
      family,
      protocol,
      local_address: decodeAddress(la, family),
      local_port: Number.parseInt(lp, 16),
      remote_address: decodeAddress(ra, family),
      remote_port: Number.parseInt(rp, 16),
      path: "",
      state: protocol === IPPROTO_TCP ? (st > 0 && st < TCP_STATES.length ? TCP_STATES[st]! : "UNKNOWN") : "",
      net_namespace: ns,
    });
  }
}

function parseUnix(text: string, ns: string, out: SocketInfo[]): void {
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 7) continue;
    out.push({
      socket: f[6] ?? "",
      family: AF_UNIX,
      protocol: Number.parseInt(f[2] ?? "0", 16) || 0,
      local_address: "",
      local_port: 0,
      remote_address: "",
      remote_port: 0,
      path: f[7] ?? "",
      state: "",
      net_namespace: ns,
    });
  }
}

/**
 * Sockets of every network namespace a process lives in. /proc/PID/net is
 * that process's namespace, so the agent sees the host's sockets even when
 * its own host process runs in a private one.
 */
export function genProcessOpenSockets(ctx: GenContext): Row[] {
  const root = ctx.root;
  const owners = new Map<string, { pid: number; fd: number }>();
  const nsPid = new Map<string, string>();
  const src = procSource(ctx);
  for (const pid of listPids(root)) {
    for (const [fd, target] of src.fds(pid)) {
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && !owners.has(m[1]!)) owners.set(m[1]!, { pid: Number(pid), fd });
    }
    const ns = /\[(\d+)\]/.exec(src.link(pid, "ns/net") ?? "")?.[1] ?? "0";
    if (!nsPid.has(ns)) nsPid.set(ns, pid);
  }
  if (nsPid.size === 0) nsPid.set("0", "self");
  const sockets: SocketInfo[] = [];
  for (const [ns, pid] of nsPid) {
    const net = `${root}/proc/${pid}/net`;
    const tables: [string, number, number][] = [
      ["tcp", AF_INET, IPPROTO_TCP],
      ["tcp6", AF_INET6, IPPROTO_TCP],
      ["udp", AF_INET, IPPROTO_UDP],
      ["udp6", AF_INET6, IPPROTO_UDP],
    ];
    for (const [file, family, protocol] of tables) {
      const text = read(`${net}/${file}`);
      if (text) parseInet(text, family, protocol, ns, sockets);
    }
    const unix = read(`${net}/unix`);
    if (unix) parseUnix(unix, ns, sockets);
  }
  const rows: Row[] = [];
  for (const s of sockets) {
    const owner = owners.get(s.socket);
    rows.push({
      pid: owner?.pid ?? -1,
      fd: owner?.fd ?? -1,
      socket: Number(s.socket),
      family: s.family,
      protocol: s.protocol,
      local_address: s.local_address,
      remote_address: s.remote_address,
      local_port: s.local_port,
      remote_port: s.remote_port,
      path: s.path,
      state: s.state,
      net_namespace: s.net_namespace,
    });
  }
  return rows;
}

/** osquery's derivation: bound sockets with no remote end, and named unix sockets. */
export function genListeningPorts(ctx: GenContext): Row[] {
  const all = genProcessOpenSockets({ ...ctx, wants: () => true });
  const rows: Row[] = [];
  for (const s of all) {
    const family = s.family as number;
    if (family === AF_UNIX && !s.path) continue;
    if ((family === AF_INET || family === AF_INET6) && s.remote_port !== 0) continue;
    // A TCP socket with remote port 0 that is not listening (e.g. closed) is still "bound" to osquery.
    const unix = family === AF_UNIX;
    rows.push({
      pid: s.pid ?? -1,
      port: unix ? 0 : (s.local_port ?? 0),
      protocol: s.protocol ?? 0,
      family,
      address: unix ? "" : (s.local_address ?? ""),
      fd: s.fd ?? 0,
      socket: unix ? 0 : (s.socket ?? 0),
      path: unix ? (s.path ?? "") : "",
      net_namespace: s.net_namespace ?? "",
    });
  }
  return rows;
}
