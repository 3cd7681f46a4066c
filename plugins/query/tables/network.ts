/**
 * Network configuration tables: /etc/hosts, the ARP cache and iptables
 * rules. The ARP cache is read through pid 1's /proc view (like routes), so
 * a private network namespace of the query host does not hide the host's.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import type { GenContext, Row, TableDef } from "./context.ts";
import { readText } from "./read.ts";
import { B, I, T, table } from "./schema.ts";

export function genEtcHosts(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  for (const raw of (readText(`${ctx.root}/etc/hosts`) ?? "").split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) continue;
    const [address, ...names] = line.split(/\s+/);
    rows.push({ address: address!, hostnames: names.join(" ") });
  }
  return rows;
}

const ATF_PERM = 0x4;

/** /proc/net/arp: `IP HWtype Flags HWaddress Mask Device`. */
export function genArpCache(ctx: GenContext): Row[] {
  const text = readText(`${ctx.root}/proc/1/net/arp`) ?? readText(`${ctx.root}/proc/net/arp`) ?? "";
  const rows: Row[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6) continue;
    const flags = Number.parseInt(f[2]!, 16);
    rows.push({ address: f[0]!, mac: f[3]!, interface: f[5]!, permanent: flags & ATF_PERM ? "1" : "0" });
  }
  return rows;
}

/**
 * /proc/net/ip_tables_names lists the x_tables (legacy) tables, which the
 * nft-backed iptables-save does not show: the legacy dumper comes first.
 */
const IPTABLES_SAVE = [
  "/usr/sbin/iptables-legacy-save",
  "/sbin/iptables-legacy-save",
  "/usr/sbin/iptables-save",
  "/sbin/iptables-save",
];

/**
 * One `-A CHAIN …` line of `iptables-save -c` into osquery's columns. osquery
 * reads the same rules through libiptc; iptables-save is its textual dump.
 */
export function parseIptablesRule(table: string, policy: string, line: string): Row | undefined {
  const m = /^\[(\d+):(\d+)\]\s+-A\s+(\S+)\s*(.*)$/.exec(line);
  if (!m) return undefined;
  const args = m[4]!.split(/\s+/);
  const row: Row = {
    filter_name: table,
    chain: m[3]!,
    policy,
    target: "",
    protocol: 0,
    src_port: "",
    dst_port: "",
    src_ip: "0.0.0.0",
    src_mask: "0.0.0.0",
    iniface: "all",
    iniface_mask: "",
    dst_ip: "0.0.0.0",
    dst_mask: "0.0.0.0",
    outiface: "all",
    outiface_mask: "",
    match: "",
    packets: Number(m[1]),
    bytes: Number(m[2]),
  };
  const cidr = (v: string): [string, string] => {
    const [ip, bits] = v.split("/");
    const n = bits === undefined ? 32 : Number(bits);
    const mask = n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
    return [ip!, [24, 16, 8, 0].map((s) => (mask >>> s) & 0xff).join(".")];
  };
  const protocols: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, all: 0 };
  const matches: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const v = args[i + 1] ?? "";
    const takesValue = ["-j", "-g", "-p", "-s", "-d", "-i", "-o", "--sport", "--dport", "-m"].includes(a);
    if (a === "-j" || a === "-g") row.target = v;
    else if (a === "-p") row.protocol = protocols[v] ?? (Number(v) || 0);
    else if (a === "-s") [row.src_ip, row.src_mask] = cidr(v);
    else if (a === "-d") [row.dst_ip, row.dst_mask] = cidr(v);
    else if (a === "-i") row.iniface = v;
    else if (a === "-o") row.outiface = v;
    else if (a === "--sport") row.src_port = v;
    else if (a === "--dport") row.dst_port = v;
    else if (a === "-m") matches.push(v);
    if (takesValue) i++;
  }
  row.match = matches.join(",");
  return row;
}

/** Rules of the legacy iptables tables the kernel has (/proc/net/ip_tables_names); none → no rows. */
export function genIptables(ctx: GenContext): Row[] {
  const names = (readText(`${ctx.root}/proc/net/ip_tables_names`) ?? "").split("\n").filter(Boolean);
  const tool = IPTABLES_SAVE.find((p) => existsSync(p));
  if (names.length === 0) return [];
  if (!tool) {
    ctx.warn("iptables: the kernel has iptables tables but iptables-save is not installed");
    return [];
  }
  const rows: Row[] = [];
  for (const t of names.sort()) {
    const r = spawnSync(tool, ["-c", "-t", t], { encoding: "utf8", timeout: 10_000 });
    if (r.status !== 0) {
      ctx.warn(`iptables: iptables-save -t ${t} failed: ${(r.stderr ?? "").trim() || r.error?.message}`);
      continue;
    }
    const policies = new Map<string, string>();
    for (const line of r.stdout.split("\n")) {
      const p = /^:(\S+)\s+(\S+)/.exec(line);
      if (p) policies.set(p[1]!, p[2] === "-" ? "" : p[2]!);
      const chain = /-A\s+(\S+)/.exec(line)?.[1] ?? "";
      const row = parseIptablesRule(t, policies.get(chain) ?? "", line);
      if (row) rows.push(row);
    }
  }
  return rows;
}

export const NETWORK_TABLES: TableDef[] = [
  {
    schema: table("etc_hosts", "Line-parsed /etc/hosts.", [
      ["address", T],
      ["hostnames", T],
    ]),
    gen: genEtcHosts,
  },
  {
    schema: table("arp_cache", "Address resolution cache, both static and dynamic (from ARP, NDP).", [
      ["address", T],
      ["mac", T],
      ["interface", T],
      ["permanent", T],
    ]),
    gen: genArpCache,
  },
  {
    schema: table("iptables", "Linux IP packet filtering and NAT tool.", [
      ["filter_name", T],
      ["chain", T],
      ["policy", T],
      ["target", T],
      ["protocol", I],
      ["src_port", T],
      ["dst_port", T],
      ["src_ip", T],
      ["src_mask", T],
      ["iniface", T],
      ["iniface_mask", T],
      ["dst_ip", T],
      ["dst_mask", T],
      ["outiface", T],
      ["outiface_mask", T],
      ["match", T],
      ["packets", B],
      ["bytes", B],
    ]),
    gen: genIptables,
  },
];
