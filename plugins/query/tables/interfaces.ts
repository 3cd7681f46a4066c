/**
 * interface_addresses of the host's network namespace, not the query
 * host's own (an empty namespace under the sandbox): read through pid 1's
 * /proc view like routes — IPv6 from if_inet6, IPv4 from the local routes
 * in fib_trie, each placed on the interface whose connected route holds it.
 * Where pid 1's view is unreadable, the process's own interfaces are used.
 */
import os from "node:os";
import type { GenContext, Row } from "./context.ts";
import { formatIpv6 } from "./proc.ts";
import { readText } from "./read.ts";

const v4ToInt = (a: string) => a.split(".").reduce((n, o) => n * 256 + Number(o), 0) >>> 0;
const intToV4 = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join(".");
const maskOf = (bits: number) => (bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);

function v6Mask(bits: number): string {
  const bytes = Array.from({ length: 16 }, (_, i) => {
    const b = Math.max(0, Math.min(8, bits - i * 8));
    return (0xff << (8 - b)) & 0xff;
  });
  return formatIpv6(bytes);
}

/** Addresses the kernel treats as this host's (`/32 host LOCAL` leaves of fib_trie). */
export function localV4(fibTrie: string): string[] {
  const out = new Set<string>();
  let last = "";
  for (const line of fibTrie.split("\n")) {
    const leaf = /\|--\s+(\d+\.\d+\.\d+\.\d+)/.exec(line);
    if (leaf) last = leaf[1]!;
    else if (/^\s*\/32 host LOCAL/.test(line) && last) out.add(last);
  }
  return [...out];
}

/** Connected (gateway-less) routes of /proc/net/route: interface, network and prefix. */
function connectedRoutes(route: string): { iface: string; net: number; bits: number }[] {
  const out: { iface: string; net: number; bits: number }[] = [];
  for (const line of route.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || Number.parseInt(f[2]!, 16) !== 0) continue;
    const le = (h: string) => {
      const n = Number.parseInt(h, 16);
      return (
        (((n & 0xff) << 24) |
          (((n >>> 8) & 0xff) << 16) |
          (((n >>> 16) & 0xff) << 8) |
          ((n >>> 24) & 0xff)) >>>
        0
      );
    };
    const mask = le(f[7]!);
    out.push({ iface: f[0]!, net: le(f[1]!), bits: mask.toString(2).replace(/0/g, "").length });
  }
  return out;
}

export function interfaceAddressesFromProc(net: {
  ifInet6?: string;
  fibTrie?: string;
  route?: string;
}): Row[] {
  const rows: Row[] = [];
  const routes = connectedRoutes(net.route ?? "");
  for (const addr of localV4(net.fibTrie ?? "")) {
    const a = v4ToInt(addr);
    const loopback = addr.startsWith("127.");
    const best = loopback
      ? { iface: "lo", bits: 8 }
      : routes.filter((r) => (a & maskOf(r.bits)) >>> 0 === r.net).sort((x, y) => y.bits - x.bits)[0];
    if (!best) continue;
    const mask = maskOf(best.bits);
    rows.push({
      interface: best.iface,
      address: addr,
      mask: intToV4(mask),
      broadcast: loopback ? "" : intToV4((a | ~mask) >>> 0),
      point_to_point: "",
      type: "unknown",
    });
  }
  for (const line of (net.ifInet6 ?? "").split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6) continue;
    const bytes = Array.from({ length: 16 }, (_, i) => Number.parseInt(f[0]!.slice(i * 2, i * 2 + 2), 16));
    const scope = Number.parseInt(f[3]!, 16);
    rows.push({
      interface: f[5]!,
      // Link-scope addresses carry their zone, as getifaddrs-based listings print them.
      address: formatIpv6(bytes) + (scope === 0x20 ? `%${f[5]}` : ""),
      mask: v6Mask(Number.parseInt(f[2]!, 16)),
      broadcast: "",
      point_to_point: "",
      type: "unknown",
    });
  }
  return rows;
}

function ipv4Broadcast(address: string, mask: string): string {
  const a = address.split(".").map(Number);
  const m = mask.split(".").map(Number);
  if (a.length !== 4 || m.length !== 4) return "";
  return a.map((v, i) => (v & m[i]!) | (~m[i]! & 0xff)).join(".");
}

/** The process's own namespace (os.networkInterfaces), when pid 1's view cannot be read. */
function ownInterfaces(): Row[] {
  const rows: Row[] = [];
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    for (const a of addrs ?? []) {
      const v4 = a.family === "IPv4";
      rows.push({
        interface: name,
        address: a.address + (!v4 && a.scopeid ? `%${name}` : ""),
        mask: a.netmask,
        broadcast: v4 && !a.internal ? ipv4Broadcast(a.address, a.netmask) : "",
        point_to_point: "",
        type: "unknown",
      });
    }
  }
  return rows;
}

export function genInterfaceAddresses(ctx: GenContext): Row[] {
  const fibTrie = readText(`${ctx.root}/proc/1/net/fib_trie`);
  const ifInet6 = readText(`${ctx.root}/proc/1/net/if_inet6`);
  if (fibTrie === undefined && ifInet6 === undefined) return ownInterfaces();
  return interfaceAddressesFromProc({ fibTrie, ifInet6, route: readText(`${ctx.root}/proc/1/net/route`) });
}
