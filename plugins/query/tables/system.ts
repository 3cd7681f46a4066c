/**
 * Host inventory tables: accounts, OS and kernel, hardware, uptime, mounts,
 * network configuration, cron and Debian packages — read from the files
 * osquery reads on Linux, with its column semantics. Missing files give
 * empty tables (a container without utmp has no logged-in users).
 */
import { readdirSync, readFileSync, realpathSync, statfsSync } from "node:fs";
import os from "node:os";
import { PSEUDO_FILESYSTEMS, unescapeMountField } from "../../../core/mounts.ts";
import type { GenContext, Row } from "./context.ts";
import { formatIpv6 } from "./proc.ts";

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function readBytes(path: string): Uint8Array | undefined {
  try {
    return new Uint8Array(readFileSync(path));
  } catch {
    return undefined;
  }
}

const signed32 = (n: number) => (n > 0x7fffffff ? n - 0x100000000 : n);

export function genUsers(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  for (const line of (read(`${ctx.root}/etc/passwd`) ?? "").split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const f = line.split(":");
    if (f.length < 7) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    rows.push({
      uid,
      gid,
      uid_signed: signed32(uid),
      gid_signed: signed32(gid),
      username: f[0] ?? "",
      description: f[4] ?? "",
      directory: f[5] ?? "",
      shell: f[6] ?? "",
      uuid: "",
    });
  }
  return rows;
}

export function genGroups(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  for (const line of (read(`${ctx.root}/etc/group`) ?? "").split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const f = line.split(":");
    if (f.length < 3) continue;
    const gid = Number(f[2]);
    rows.push({ gid, gid_signed: signed32(gid), groupname: f[0] ?? "" });
  }
  return rows;
}

const UTMP_TYPES: Record<number, string> = {
  0: "empty",
  1: "runlevel",
  2: "boot_time",
  3: "new_time",
  4: "old_time",
  5: "init",
  6: "login",
  7: "user",
  8: "dead",
  9: "accounting",
};

/** glibc `struct utmp` on 64-bit Linux: 384 bytes. */
export const UTMP_RECORD_SIZE = 384;

function cString(bytes: Uint8Array, start: number, len: number): string {
  const slice = bytes.subarray(start, start + len);
  const nul = slice.indexOf(0);
  return new TextDecoder().decode(nul < 0 ? slice : slice.subarray(0, nul));
}

export function genLoggedInUsers(ctx: GenContext): Row[] {
  const bytes = readBytes(`${ctx.root}/var/run/utmp`) ?? readBytes(`${ctx.root}/run/utmp`);
  if (!bytes) return [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rows: Row[] = [];
  for (let off = 0; off + UTMP_RECORD_SIZE <= bytes.length; off += UTMP_RECORD_SIZE) {
    const type = view.getInt16(off, true);
    const pid = view.getInt32(off + 4, true);
    if (pid === 1) continue;
    rows.push({
      type: UTMP_TYPES[type] ?? "unknown",
      user: cString(bytes, off + 44, 32),
      tty: cString(bytes, off + 8, 32),
      host: cString(bytes, off + 76, 256),
      time: view.getInt32(off + 340, true),
      pid,
    });
  }
  return rows;
}

function osRelease(root: string): Map<string, string> {
  const m = new Map<string, string>();
  const text = read(`${root}/etc/os-release`) ?? read(`${root}/usr/lib/os-release`) ?? "";
  for (const line of text.split("\n")) {
    const i = line.indexOf("=");
    if (i <= 0) continue;
    m.set(
      line.slice(0, i).trim(),
      line
        .slice(i + 1)
        .trim()
        .replace(/^"(.*)"$/, "$1"),
    );
  }
  return m;
}

export function genOsVersion(ctx: GenContext): Row[] {
  const r = osRelease(ctx.root);
  const [major, minor, patch] = (r.get("VERSION_ID") ?? "").split(".").map((p) => Number.parseInt(p, 10));
  return [
    {
      name: r.get("NAME") ?? "Linux",
      version: r.get("VERSION") ?? r.get("VERSION_ID") ?? "",
      major: Number.isFinite(major) ? major! : 0,
      minor: Number.isFinite(minor) ? minor! : 0,
      patch: Number.isFinite(patch) ? patch! : 0,
      build: r.get("BUILD_ID") ?? "",
      platform: r.get("ID") ?? "",
      platform_like: r.get("ID_LIKE") ?? "",
      codename: r.get("VERSION_CODENAME") ?? "",
      arch: os.machine(),
    },
  ];
}

export function genKernelInfo(ctx: GenContext): Row[] {
  const cmdline = (read(`${ctx.root}/proc/cmdline`) ?? "").trim();
  const arg = (name: string) =>
    cmdline
      .split(/\s+/)
      .find((a) => a.startsWith(`${name}=`))
      ?.slice(name.length + 1) ?? "";
  return [{ version: os.release(), arguments: cmdline, path: arg("BOOT_IMAGE"), device: arg("root") }];
}

function dmi(root: string, name: string): string {
  return (read(`${root}/sys/class/dmi/id/${name}`) ?? "").trim();
}

export function genSystemInfo(ctx: GenContext): Row[] {
  const cpuinfo = read(`${ctx.root}/proc/cpuinfo`) ?? "";
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, "m").exec(cpuinfo)?.[1]?.trim() ?? "";
  const physical = new Set<string>();
  const cores = new Set<string>();
  let current = "";
  for (const line of cpuinfo.split("\n")) {
    const [k, v] = line.split(":").map((s) => s.trim());
    if (k === "physical id") {
      current = v ?? "";
      physical.add(current);
    } else if (k === "core id") cores.add(`${current}:${v}`);
  }
  const memTotal = /^MemTotal:\s+(\d+)/m.exec(read(`${ctx.root}/proc/meminfo`) ?? "")?.[1];
  const host = os.hostname();
  const uuid =
    dmi(ctx.root, "product_uuid") ||
    (read(`${ctx.root}/etc/machine-id`) ?? "")
      .trim()
      .replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, "$1-$2-$3-$4-$5")
      .toUpperCase();
  return [
    {
      hostname: host,
      uuid,
      cpu_type: os.machine(),
      cpu_subtype: field("model"),
      cpu_brand: field("model name"),
      cpu_physical_cores: cores.size || os.cpus().length,
      cpu_logical_cores: os.cpus().length,
      cpu_sockets: physical.size || 1,
      cpu_microcode: field("microcode"),
      physical_memory: memTotal ? Number(memTotal) * 1024 : os.totalmem(),
      hardware_vendor: dmi(ctx.root, "sys_vendor"),
      hardware_model: dmi(ctx.root, "product_name"),
      hardware_version: dmi(ctx.root, "product_version"),
      hardware_serial: dmi(ctx.root, "product_serial"),
      board_vendor: dmi(ctx.root, "board_vendor"),
      board_model: dmi(ctx.root, "board_name"),
      board_version: dmi(ctx.root, "board_version"),
      board_serial: dmi(ctx.root, "board_serial"),
      computer_name: host,
      local_hostname: host,
    },
  ];
}

export function genUptime(ctx: GenContext): Row[] {
  const total = Math.floor(Number((read(`${ctx.root}/proc/uptime`) ?? "0").split(" ")[0]));
  return [
    {
      days: Math.floor(total / 86400),
      hours: Math.floor((total % 86400) / 3600),
      minutes: Math.floor((total % 3600) / 60),
      seconds: total % 60,
      total_seconds: total,
    },
  ];
}

export function genMounts(ctx: GenContext): Row[] {
  const text = read(`${ctx.root}/proc/mounts`) ?? "";
  const wantsStat = [
    "blocks_size",
    "blocks",
    "blocks_free",
    "blocks_available",
    "inodes",
    "inodes_free",
  ].some((c) => ctx.wants(c));
  const rows: Row[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f.length < 4) continue;
    const device = unescapeMountField(f[0]!);
    const path = unescapeMountField(f[1]!);
    const type = f[2]!;
    let alias = device;
    if (device.startsWith("/")) {
      try {
        alias = realpathSync(device);
      } catch {
        alias = device;
      }
    }
    const row: Row = {
      device,
      device_alias: alias,
      path,
      type,
      blocks_size: null,
      blocks: null,
      blocks_free: null,
      blocks_available: null,
      inodes: null,
      inodes_free: null,
      flags: f[3]!,
    };
    // statfs on a network mount can block for minutes; only local file systems are measured.
    if (
      wantsStat &&
      !PSEUDO_FILESYSTEMS.has(type) &&
      !/^(nfs|nfs4|cifs|smb3|sshfs|fuse\.sshfs|9p)$/.test(type)
    ) {
      try {
        const s = statfsSync(path);
        Object.assign(row, {
          blocks_size: s.bsize,
          blocks: s.blocks,
          blocks_free: s.bfree,
          blocks_available: s.bavail,
          inodes: s.files,
          inodes_free: s.ffree,
        });
      } catch {
        // Not ours to read: leave the numbers empty, as osquery does.
      }
    }
    rows.push(row);
  }
  return rows;
}

function maskBits(hexLe: string): number {
  let n = Number.parseInt(hexLe, 16) >>> 0;
  let bits = 0;
  while (n) {
    bits += n & 1;
    n >>>= 1;
  }
  return bits;
}

function decodeV4(hexLe: string): string {
  const n = Number.parseInt(hexLe, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join(".");
}

/** /proc/net/ipv6_route addresses are 32 hex digits in network order. */
function decodeV6(hex: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < 32; i += 2) bytes.push(Number.parseInt(hex.slice(i, i + 2), 16));
  return formatIpv6(bytes);
}

const RTF_LOCAL = 0x80000000;

/** Routes of the host's main table; pid 1's view, so a private namespace of the agent does not hide them. */
export function genRoutes(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  const v4 = read(`${ctx.root}/proc/1/net/route`) ?? read(`${ctx.root}/proc/net/route`) ?? "";
  for (const line of v4.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 11) continue;
    const flags = Number.parseInt(f[3]!, 16);
    const gateway = decodeV4(f[2]!);
    rows.push({
      destination: decodeV4(f[1]!),
      netmask: maskBits(f[7]!),
      // osquery reports a gateway only when the route has one.
      gateway: gateway === "0.0.0.0" ? "" : gateway,
      source: "",
      flags,
      interface: f[0]!,
      mtu: Number(f[8]),
      metric: Number(f[6]),
      // /proc/net/route lists the main table's unicast routes, which osquery calls "gateway".
      type: "gateway",
      hopcount: 0,
    });
  }
  const v6 = read(`${ctx.root}/proc/1/net/ipv6_route`) ?? read(`${ctx.root}/proc/net/ipv6_route`) ?? "";
  for (const line of v6.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const flags = Number.parseInt(f[8]!, 16) >>> 0;
    const gateway = decodeV6(f[4]!);
    const source = decodeV6(f[2]!);
    rows.push({
      destination: decodeV6(f[0]!),
      netmask: Number.parseInt(f[1]!, 16),
      gateway: gateway === "::" ? "" : gateway,
      source: source === "::" ? "" : source,
      flags,
      interface: f[9]!,
      mtu: 0,
      metric: Number.parseInt(f[5]!, 16),
      type: (flags & RTF_LOCAL) >>> 0 ? "local" : "gateway",
      hopcount: 0,
    });
  }
  return rows;
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path)
      .filter((n) => !n.startsWith("."))
      .sort();
  } catch {
    return [];
  }
}

/** Cron lines: `@event cmd` or five time fields and the command (system crontabs keep the user in it, as osquery does). */
function parseCrontab(text: string, path: string): Row[] {
  const rows: Row[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const f = line.split(/\s+/);
    if (line.startsWith("@")) {
      if (f.length < 2) continue;
      rows.push({
        event: f[0]!,
        minute: "",
        hour: "",
        day_of_month: "",
        month: "",
        day_of_week: "",
        command: f.slice(1).join(" "),
        path,
      });
      continue;
    }
    // Environment assignments (SHELL=/bin/sh) and malformed lines have too few fields.
    if (f.length < 6 || /^[A-Za-z_][A-Za-z0-9_]*=/.test(line)) continue;
    rows.push({
      event: "",
      minute: f[0]!,
      hour: f[1]!,
      day_of_month: f[2]!,
      month: f[3]!,
      day_of_week: f[4]!,
      command: f.slice(5).join(" "),
      path,
    });
  }
  return rows;
}

export function genCrontab(ctx: GenContext): Row[] {
  const files = [
    "/etc/crontab",
    ...listDir(`${ctx.root}/etc/cron.d`).map((n) => `/etc/cron.d/${n}`),
    ...listDir(`${ctx.root}/var/spool/cron/crontabs`).map((n) => `/var/spool/cron/crontabs/${n}`),
    ...listDir(`${ctx.root}/var/spool/cron`)
      .filter((n) => n !== "crontabs")
      .map((n) => `/var/spool/cron/${n}`),
  ];
  const rows: Row[] = [];
  for (const path of files) {
    const text = read(`${ctx.root}${path}`);
    if (text !== undefined) rows.push(...parseCrontab(text, path));
  }
  return rows;
}

export const DPKG_ADMINDIR = "/var/lib/dpkg";

export function genDebPackages(ctx: GenContext): Row[] {
  const text = read(`${ctx.root}${DPKG_ADMINDIR}/status`);
  if (text === undefined) return [];
  const rows: Row[] = [];
  for (const para of text.split(/\n\n+/)) {
    const fields = new Map<string, string>();
    let last = "";
    for (const line of para.split("\n")) {
      if (line.startsWith(" ") || line.startsWith("\t")) continue;
      const i = line.indexOf(":");
      if (i <= 0) continue;
      last = line.slice(0, i);
      fields.set(last, line.slice(i + 1).trim());
    }
    const name = fields.get("Package");
    const status = fields.get("Status") ?? "";
    if (!name || status.endsWith("not-installed")) continue;
    const version = fields.get("Version") ?? "";
    const dash = version.lastIndexOf("-");
    rows.push({
      name,
      version,
      source: (fields.get("Source") ?? "").replace(/\s*\(.*\)$/, ""),
      size: fields.has("Installed-Size") ? Number(fields.get("Installed-Size")) : null,
      arch: fields.get("Architecture") ?? "",
      revision: dash > 0 ? version.slice(dash + 1) : "",
      status,
      maintainer: fields.get("Maintainer") ?? "",
      section: fields.get("Section") ?? "",
      priority: fields.get("Priority") ?? "",
      admindir: DPKG_ADMINDIR,
    });
  }
  return rows;
}
