/**
 * osquery's SQL additions (osquery/sql/sqlite_*.cpp, documented under
 * "SQL additions"), registered on each query's SQLite database so pack
 * queries that use them run here too. SQLite already has the math functions
 * osquery adds (ln, log, sqrt, power, …) and concat/concat_ws. Semantics
 * follow osquery: a bad argument gives NULL, not an error, as there.
 */
import type { Database } from "bun:sqlite";
import { isIPv4, isIPv6 } from "../../core/ip-address.ts";

type V = string | number | bigint | null | Uint8Array | undefined;

const text = (v: V): string | undefined => {
  if (v === null || v === undefined) return undefined;
  if (v instanceof Uint8Array) return Buffer.from(v).toString("utf8");
  return String(v);
};

const int = (v: V): number | undefined => {
  if (v === null || v === undefined) return undefined;
  const n = Number(v);
  return Number.isInteger(n) ? n : undefined;
};

/** split(str, tokens, index): each character of `tokens` separates; empty pieces are dropped (boost token_compress_on). */
export function split(s: V, tokens: V, index: V): string | null {
  const str = text(s);
  const t = text(tokens);
  const i = int(index);
  if (str === undefined || !t || i === undefined || i < 0) return null;
  const set = new Set(t);
  const parts: string[] = [];
  let cur = "";
  for (const ch of str) {
    if (set.has(ch)) {
      if (cur) parts.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (cur) parts.push(cur);
  return parts[i] ?? null;
}

function regex(pattern: string | undefined): RegExp | undefined {
  if (pattern === undefined) return undefined;
  try {
    // osquery uses std::regex with the ECMAScript grammar; JavaScript's is the same family.
    return new RegExp(pattern, "g");
  } catch {
    return undefined;
  }
}

/** regex_split(str, pattern, index): the index-th piece between matches (empty pieces dropped, as osquery does). */
export function regexSplit(s: V, pattern: V, index: V): string | null {
  const str = text(s);
  const re = regex(text(pattern));
  const i = int(index);
  if (str === undefined || !re || i === undefined || i < 0) return null;
  return str.split(re).filter((p) => p !== "" && p !== undefined)[i] ?? null;
}

/** regex_match(str, pattern, index): group `index` of the first match (0 = the whole match). */
export function regexMatch(s: V, pattern: V, index: V): string | null {
  const str = text(s);
  const re = regex(text(pattern));
  const i = int(index);
  if (str === undefined || !re || i === undefined || i < 0) return null;
  const m = new RegExp(re.source).exec(str);
  return m?.[i] ?? null;
}

export function inetAton(s: V): number | null {
  const str = text(s);
  if (str === undefined || !isIPv4(str)) return null;
  return str.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}

function ipBytes(ip: string): Buffer | undefined {
  if (isIPv4(ip)) return Buffer.from(ip.split(".").map(Number));
  if (!isIPv6(ip)) return undefined;
  let [head, tail] = ip.includes("::") ? ip.split("::") : [ip, undefined];
  // An embedded IPv4 tail (::ffff:1.2.3.4) is two groups.
  const v4 = (s: string) =>
    s.replace(
      /(\d+)\.(\d+)\.(\d+)\.(\d+)$/,
      (_, a, b, c, d) => `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`,
    );
  head = v4(head ?? "");
  tail = tail === undefined ? undefined : v4(tail);
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  if (groups.length !== 8) return undefined;
  const b = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) b.writeUInt16BE(Number.parseInt(g || "0", 16), i * 2);
  return b;
}

/** in_cidr_block(cidr, ip): 1 when ip is inside cidr (IPv4 or IPv6), 0 when not, NULL on bad input. */
export function inCidrBlock(cidr: V, ip: V): number | null {
  const [net, bitsText] = (text(cidr) ?? "").split("/");
  const a = ipBytes(net ?? "");
  const b = ipBytes(text(ip) ?? "");
  const bits = Number(bitsText);
  if (!a || !b || bitsText === undefined || !Number.isInteger(bits) || bits < 0 || bits > a.length * 8)
    return null;
  if (a.length !== b.length) return 0;
  for (let i = 0; i < bits; i++) {
    const mask = 0x80 >> (i % 8);
    if ((a[i >> 3]! & mask) !== (b[i >> 3]! & mask)) return 0;
  }
  return 1;
}

/** ICMP/ICMPv6 type → reply type, for Community ID's two-way ICMP flows (spec section "ICMP"). */
const ICMP4_PAIRS: Record<number, number> = {
  8: 0,
  0: 8,
  13: 14,
  14: 13,
  15: 16,
  16: 15,
  10: 9,
  9: 10,
  17: 18,
  18: 17,
};
const ICMP6_PAIRS: Record<number, number> = {
  128: 129,
  129: 128,
  133: 134,
  134: 133,
  135: 136,
  136: 135,
  130: 131,
  131: 130,
};

/** community_id_v1(src_ip, dst_ip, src_port, dst_port, proto[, seed]): Corelight's Community ID v1 flow hash. */
export function communityIdV1(srcIp: V, dstIp: V, srcPort: V, dstPort: V, proto: V, seed?: V): string | null {
  let sa = ipBytes(text(srcIp) ?? "");
  let da = ipBytes(text(dstIp) ?? "");
  let sp = int(srcPort);
  let dp = int(dstPort);
  const p = int(proto);
  const s = seed === undefined ? 0 : int(seed);
  if (
    !sa ||
    !da ||
    sa.length !== da.length ||
    sp === undefined ||
    dp === undefined ||
    p === undefined ||
    s === undefined
  )
    return null;
  if (sp < 0 || sp > 65535 || dp < 0 || dp > 65535 || p < 0 || p > 255 || s < 0 || s > 65535) return null;
  let oneWay = false;
  if (p === 1 || p === 58) {
    const pairs = p === 1 ? ICMP4_PAIRS : ICMP6_PAIRS;
    const reply = pairs[sp];
    if (reply === undefined) oneWay = true;
    else dp = reply;
  }
  const cmp = Buffer.compare(sa, da);
  if (!oneWay && (cmp > 0 || (cmp === 0 && sp > dp))) [sa, da, sp, dp] = [da, sa, dp, sp];
  const seedBuf = Buffer.alloc(2);
  seedBuf.writeUInt16BE(s);
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(sp, 0);
  ports.writeUInt16BE(dp, 2);
  const hasPorts = [1, 6, 17, 58, 132].includes(p);
  const data = Buffer.concat([seedBuf, sa, da, Buffer.from([p, 0]), hasPorts ? ports : Buffer.alloc(0)]);
  return `1:${new Bun.CryptoHasher("sha1").update(data).digest("base64")}`;
}

/** conditional_to_base64: base64 only when the value is not plain printable ASCII. */
export function conditionalToBase64(v: V): string | null {
  const s = text(v);
  if (s === undefined) return null;
  return /^[\x20-\x7e\t\r\n]*$/.test(s) ? s : Buffer.from(s, "utf8").toString("base64");
}

export function fromBase64(v: V): string | null {
  const s = text(v);
  if (s === undefined || !/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return null;
  return Buffer.from(s, "base64").toString("utf8");
}

/**
 * version_compare(a, b[, type]): -1, 0 or 1. Without a type, dotted
 * components compare numerically when both are numbers, else as text;
 * 'DPKG' uses dpkg's ordering (epoch, upstream, revision with `~` lowest),
 * 'RHEL' rpm's rpmvercmp.
 */
export function versionCompare(a: V, b: V, type?: V): number | null {
  const x = text(a);
  const y = text(b);
  if (x === undefined || y === undefined) return null;
  const t = (text(type) ?? "").toUpperCase();
  if (t === "DPKG") return Math.sign(dpkgCompare(x, y));
  if (t === "RHEL" || t === "RPM") return Math.sign(rpmvercmp(x, y));
  if (t !== "") return null;
  const pa = x.split(/[.\-_+:~]/);
  const pb = y.split(/[.\-_+:~]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const u = pa[i] ?? "0";
    const v = pb[i] ?? "0";
    const d =
      /^\d+$/.test(u) && /^\d+$/.test(v) ? Math.sign(Number(u) - Number(v)) : u < v ? -1 : u > v ? 1 : 0;
    if (d) return d;
  }
  return 0;
}

/** dpkg's verrevcmp order for one part: `~` < end < letters < other characters. */
function dpkgOrder(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === "~") return -1;
  if (/\d/.test(c)) return 0;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let first = 0;
    while ((i < a.length && !/\d/.test(a[i]!)) || (j < b.length && !/\d/.test(b[j]!))) {
      const d = dpkgOrder(a[i]) - dpkgOrder(b[j]);
      if (d) return d;
      i++;
      j++;
    }
    while (a[i] === "0") i++;
    while (b[j] === "0") j++;
    while (i < a.length && /\d/.test(a[i]!) && j < b.length && /\d/.test(b[j]!)) {
      if (!first) first = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && /\d/.test(a[i]!)) return 1;
    if (j < b.length && /\d/.test(b[j]!)) return -1;
    if (first) return first;
  }
  return 0;
}

export function dpkgCompare(a: string, b: string): number {
  const parse = (v: string) => {
    const colon = v.indexOf(":");
    const epoch = colon > 0 ? Number(v.slice(0, colon)) : 0;
    const rest = colon > 0 ? v.slice(colon + 1) : v;
    const dash = rest.lastIndexOf("-");
    return {
      epoch,
      upstream: dash > 0 ? rest.slice(0, dash) : rest,
      revision: dash > 0 ? rest.slice(dash + 1) : "",
    };
  };
  const x = parse(a);
  const y = parse(b);
  return x.epoch - y.epoch || verrevcmp(x.upstream, y.upstream) || verrevcmp(x.revision, y.revision);
}

/** rpm's rpmvercmp: alternating numeric/alpha segments, `~` sorts before anything, `^` after the end. */
export function rpmvercmp(a: string, b: string): number {
  if (a === b) return 0;
  const seg = /~|\^|\d+|[A-Za-z]+/g;
  const sa = a.match(seg) ?? [];
  const sb = b.match(seg) ?? [];
  for (let i = 0; ; i++) {
    const x = sa[i];
    const y = sb[i];
    if (x === "~" || y === "~") {
      if (x !== y) return x === "~" ? -1 : 1;
      continue;
    }
    if (x === "^" || y === "^") {
      if (x === undefined) return -1;
      if (y === undefined) return 1;
      if (x !== y) return x === "^" ? -1 : 1;
      continue;
    }
    if (x === undefined || y === undefined) return x === y ? 0 : x === undefined ? -1 : 1;
    const xn = /^\d/.test(x);
    const yn = /^\d/.test(y);
    if (xn !== yn) return xn ? 1 : -1;
    if (xn) {
      const d = x.replace(/^0+/, "").length - y.replace(/^0+/, "").length;
      if (d) return d;
    }
    const xs = xn ? x.replace(/^0+/, "") : x;
    const ys = yn ? y.replace(/^0+/, "") : y;
    if (xs !== ys) return xs < ys ? -1 : 1;
  }
}

const hash = (algo: "md5" | "sha1" | "sha256") => (v: V) => {
  if (v === null || v === undefined) return null;
  return new Bun.CryptoHasher(algo).update(v instanceof Uint8Array ? v : String(v)).digest("hex");
};

/** The functions, by name, with their SQL arities (osquery's signatures). */
export const OSQUERY_FUNCTIONS: Record<string, ((...a: V[]) => string | number | null)[]> = {
  split: [split],
  regex_split: [regexSplit],
  regex_match: [regexMatch],
  inet_aton: [inetAton],
  in_cidr_block: [inCidrBlock],
  community_id_v1: [
    (a, b, c, d, e) => communityIdV1(a, b, c, d, e),
    (a, b, c, d, e, f) => communityIdV1(a, b, c, d, e, f),
  ],
  to_base64: [
    (v) => (v === null || v === undefined ? null : Buffer.from(text(v)!, "utf8").toString("base64")),
  ],
  from_base64: [fromBase64],
  conditional_to_base64: [conditionalToBase64],
  md5: [hash("md5")],
  sha1: [hash("sha1")],
  sha256: [hash("sha256")],
  version_compare: [(a, b) => versionCompare(a, b), (a, b, t) => versionCompare(a, b, t)],
  parent_directory: [
    (v) => {
      const s = text(v);
      if (s === undefined) return null;
      const i = s.replace(/\/+$/, "").lastIndexOf("/");
      return i < 0 ? "" : i === 0 ? "/" : s.slice(0, i);
    },
  ],
};

/** Registers every osquery function on `db` (deterministic, so SQLite may use them in indexes and constant folding). */
export function registerOsqueryFunctions(db: Database): void {
  for (const [name, fns] of Object.entries(OSQUERY_FUNCTIONS)) {
    for (const fn of fns) db.function(name, { deterministic: true }, fn);
  }
}
