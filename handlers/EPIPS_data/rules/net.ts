/**
 * Address and port sets of a rule header, Suricata style:
 *
 *   any | 10.0.0.1 | 10.0.0.0/8 | 2001:db8::/32 | [a, b, !c] | !a | [a, ![b, c]]
 *   any | 80 | 1024: | :1023 | 80:90 | [80, 443, !8080] | !22
 *
 * A list matches when any positive member matches (or there is none) and no
 * negated member does. Variables ($HOME_NET) are refused: the agent has no
 * variable table, and guessing one would make rules match the wrong hosts.
 */
import { isIPv4, isIPv6 } from "../../../core/ip-address.ts";

export interface AddrSet {
  any: boolean;
  /** 16-byte networks (IPv4 as ::ffff:a.b.c.d) with prefix lengths. */
  pos: { net: Uint8Array; bits: number }[];
  neg: AddrSet[];
  /** Nested positive lists. */
  lists: AddrSet[];
}

export interface PortSet {
  any: boolean;
  ranges: [number, number][];
  neg: PortSet[];
  lists: PortSet[];
}

const MAX_ITEMS = 4096;

/** Splits a bracketed list at top-level commas. */
function splitList(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const c of s) {
    if (c === "[") depth++;
    if (c === "]") depth--;
    if (depth < 0) throw new Error(`unbalanced ']' in ${s}`);
    if (c === "," && depth === 0) {
      out.push(cur.trim());
      cur = "";
    } else cur += c;
  }
  if (depth !== 0) throw new Error(`unbalanced '[' in ${s}`);
  out.push(cur.trim());
  if (out.length > MAX_ITEMS) throw new Error(`list longer than ${MAX_ITEMS} items`);
  return out;
}

export function ipBytes(ip: string): Uint8Array | null {
  const out = new Uint8Array(16);
  if (isIPv4(ip)) {
    out[10] = 0xff;
    out[11] = 0xff;
    ip.split(".").forEach((p, i) => {
      out[12 + i] = Number(p);
    });
    return out;
  }
  if (!isIPv6(ip)) return null;
  let s = ip.replace(/%.*$/, "");
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups first.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    s = `${s.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = s.split("::");
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length > 1 && halves[1] ? halves[1].split(":") : [];
  const zeros = 8 - head.length - tail.length;
  const words = [...head, ...new Array(halves.length > 1 ? zeros : 0).fill("0"), ...tail];
  if (words.length !== 8) return null;
  words.forEach((w, i) => {
    const v = Number.parseInt(w, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

function parseAddrItem(s: string, set: AddrSet): void {
  if (s === "any") {
    set.any = true;
    return;
  }
  if (s.startsWith("$")) throw new Error(`address variable ${s} is not supported (write the networks)`);
  const [ip, bitsText] = s.split("/");
  const bytes = ipBytes(ip!);
  if (!bytes) throw new Error(`bad address '${s}'`);
  const v4 = isIPv4(ip!);
  const max = v4 ? 32 : 128;
  const bits = bitsText === undefined ? max : Number(bitsText);
  if (!/^[0-9]{1,3}$/.test(bitsText ?? "0") || bits > max) throw new Error(`bad prefix length in '${s}'`);
  set.pos.push({ net: bytes, bits: v4 ? bits + 96 : bits });
}

/** Shared by every rule that says `any` (sets are never mutated after parsing): 1M rules, one object. */
const ANY_ADDR: AddrSet = Object.freeze({ any: true, pos: [], neg: [], lists: [] }) as AddrSet;
const ANY_PORT: PortSet = Object.freeze({ any: true, ranges: [], neg: [], lists: [] }) as PortSet;

export function parseAddrSet(text: string): AddrSet {
  if (text === "any") return ANY_ADDR;
  const set: AddrSet = { any: false, pos: [], neg: [], lists: [] };
  const t = text.trim();
  if (t.startsWith("!")) {
    set.any = true;
    set.neg.push(parseAddrSet(t.slice(1)));
    return set;
  }
  if (t.startsWith("[")) {
    if (!t.endsWith("]")) throw new Error(`unbalanced list '${t}'`);
    const items = splitList(t.slice(1, -1));
    let positives = 0;
    for (const item of items) {
      if (item === "") throw new Error(`empty item in '${t}'`);
      if (item.startsWith("!")) set.neg.push(parseAddrSet(item.slice(1)));
      else if (item.startsWith("[")) {
        set.lists.push(parseAddrSet(item));
        positives++;
      } else {
        parseAddrItem(item, set);
        positives++;
      }
    }
    if (positives === 0) set.any = true;
    return set;
  }
  parseAddrItem(t, set);
  return set;
}

function inNet(ip: Uint8Array, net: Uint8Array, bits: number): boolean {
  let i = 0;
  for (; bits >= 8; bits -= 8, i++) if (ip[i] !== net[i]) return false;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (ip[i]! & mask) === (net[i]! & mask);
}

export function addrMatches(set: AddrSet, ip: Uint8Array): boolean {
  let ok = set.any;
  if (!ok) for (const p of set.pos) if (inNet(ip, p.net, p.bits)) ok = true;
  if (!ok) for (const l of set.lists) if (addrMatches(l, ip)) ok = true;
  if (!ok) return false;
  for (const n of set.neg) if (addrMatches(n, ip)) return false;
  return true;
}

function parsePort(s: string): number {
  if (!/^[0-9]{1,5}$/.test(s) || Number(s) > 65535) throw new Error(`bad port '${s}'`);
  return Number(s);
}

function parsePortItem(s: string, set: PortSet): void {
  if (s === "any") {
    set.any = true;
    return;
  }
  if (s.startsWith("$")) throw new Error(`port variable ${s} is not supported (write the ports)`);
  const colon = s.indexOf(":");
  if (colon < 0) {
    const p = parsePort(s);
    set.ranges.push([p, p]);
    return;
  }
  const lo = colon === 0 ? 0 : parsePort(s.slice(0, colon));
  const hi = colon === s.length - 1 ? 65535 : parsePort(s.slice(colon + 1));
  if (hi < lo) throw new Error(`port range '${s}' is reversed`);
  set.ranges.push([lo, hi]);
}

export function parsePortSet(text: string): PortSet {
  if (text === "any") return ANY_PORT;
  const set: PortSet = { any: false, ranges: [], neg: [], lists: [] };
  const t = text.trim();
  if (t.startsWith("!")) {
    set.any = true;
    set.neg.push(parsePortSet(t.slice(1)));
    return set;
  }
  if (t.startsWith("[")) {
    if (!t.endsWith("]")) throw new Error(`unbalanced list '${t}'`);
    let positives = 0;
    for (const item of splitList(t.slice(1, -1))) {
      if (item === "") throw new Error(`empty item in '${t}'`);
      if (item.startsWith("!")) set.neg.push(parsePortSet(item.slice(1)));
      else if (item.startsWith("[")) {
        set.lists.push(parsePortSet(item));
        positives++;
      } else {
        parsePortItem(item, set);
        positives++;
      }
    }
    if (positives === 0) set.any = true;
    return set;
  }
  parsePortItem(t, set);
  return set;
}

export function portMatches(set: PortSet, port: number): boolean {
  let ok = set.any;
  if (!ok) for (const [lo, hi] of set.ranges) if (port >= lo && port <= hi) ok = true;
  if (!ok) for (const l of set.lists) if (portMatches(l, port)) ok = true;
  if (!ok) return false;
  for (const n of set.neg) if (portMatches(n, port)) return false;
  return true;
}
