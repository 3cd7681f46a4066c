/**
 * EPIPS_data rules: a documented subset of Suricata's rule language
 * (docs/ips.md, "Rule language"). One rule per line (a trailing `\`
 * continues it), `#` comments:
 *
 *   drop tcp any any -> 10.0.0.0/8 [80,8080] (msg:"x"; flow:to_server,established;
 *        content:"GET"; depth:3; content:"|2e 2e|/"; distance:0; pcre:"/\/etc\/passwd/i"; sid:1; rev:2;)
 *
 * Pure and I/O-free: text in, rules or a RuleError out. Every refusal names
 * the file, line and (once known) sid, and the rule id (E1…E9) it breaks, so
 * a vendor sees exactly which rule to fix at pack time. Anything not listed
 * here is refused rather than ignored: a rule that silently matched less than
 * its author meant is worse than no rule.
 */
import { RE2JS } from "re2js";
import { type AddrSet, type PortSet, parseAddrSet, parsePortSet } from "./net.ts";

export type Action = "alert" | "drop";
export type Proto = "tcp" | "udp" | "ip" | "icmp";

export interface Content {
  bytes: Uint8Array;
  nocase: boolean;
  negated: boolean;
  /** Absolute window (first content, or any content without distance/within). */
  offset?: number;
  depth?: number;
  /** Relative to the end of the previous content match. */
  distance?: number;
  within?: number;
}

export interface Rule {
  action: Action;
  proto: Proto;
  src: AddrSet;
  srcPorts: PortSet;
  dst: AddrSet;
  dstPorts: PortSet;
  bidirectional: boolean;
  msg: string;
  sid: number;
  rev: number;
  contents: Content[];
  pcres: { source: string; re: RE2JS }[];
  flow: { toServer?: boolean; established?: boolean };
  /** Where it came from, for status and errors. */
  file: string;
  line: number;
}

export class RuleError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly sid: number | undefined,
    readonly rule: string,
    reason: string,
  ) {
    super(`${file}:${line}${sid === undefined ? "" : `: sid ${sid}`}: ${reason} (${rule})`);
  }
}

/** Keywords accepted but with no effect on matching (documentation only). */
const INFORMATIONAL = new Set(["classtype", "reference", "metadata", "priority", "target"]);
const CONTENT_MODIFIERS = new Set(["nocase", "offset", "depth", "distance", "within"]);
/** Largest offset/depth/distance/within: a packet is at most 64 KiB. */
const MAX_POSITION = 65_535;
export const MAX_CONTENT_BYTES = 4096;
export const MAX_PCRE_CHARS = 4096;
export const MAX_MSG_CHARS = 512;
export const MAX_RULE_CHARS = 16_384;

/** Splits `(k:v; k; …)` into options, honouring quotes and backslash escapes. */
function splitOptions(body: string, fail: (rule: string, why: string) => never): [string, string | null][] {
  const out: [string, string | null][] = [];
  let i = 0;
  const n = body.length;
  while (i < n) {
    while (i < n && (body.charCodeAt(i) === 32 || body.charCodeAt(i) === 9)) i++;
    if (i >= n) break;
    let key = "";
    while (i < n && body[i] !== ":" && body[i] !== ";") key += body[i++];
    key = key.trim();
    if (!/^[a-z_.0-9]+$/i.test(key)) fail("E2", `bad option name ${JSON.stringify(key)}`);
    if (body[i] === ";") {
      out.push([key.toLowerCase(), null]);
      i++;
      continue;
    }
    if (i >= n) fail("E2", `option ${key} is not terminated by ';'`);
    i++; // ':'
    let value = "";
    let quoted = false;
    while (i < n) {
      const c = body[i]!;
      if (c === "\\" && i + 1 < n) {
        value += c + body[i + 1];
        i += 2;
        continue;
      }
      if (c === '"') quoted = !quoted;
      if (c === ";" && !quoted) break;
      value += c;
      i++;
    }
    if (i >= n) fail("E2", `option ${key} is not terminated by ';'`);
    i++; // ';'
    out.push([key.toLowerCase(), value.trim()]);
  }
  return out;
}

/**
 * A quoted option value. `\"`, `\;` and `\\` are escapes; in a pcre every
 * other backslash is kept, because it belongs to the regex (`\d`, `\x2e`, `\1`).
 */
function unquote(v: string, what: string, fail: (rule: string, why: string) => never, regex = false): string {
  if (v.length < 2 || !v.startsWith('"') || !v.endsWith('"')) fail("E2", `${what} must be a quoted string`);
  const inner = v.slice(1, -1);
  let out = "";
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!;
    if (c === "\\") {
      const d = inner[i + 1];
      if (d === undefined) fail("E2", `${what}: dangling backslash`);
      out += regex && d !== '"' && d !== ";" ? `\\${d}` : d;
      i++;
    } else if (c === '"' || c === ";") {
      fail("E2", `${what}: unescaped '${c}' inside the string`);
    } else {
      out += c;
    }
  }
  return out;
}

/** Content text with `|hex hex|` runs into bytes. */
function contentBytes(text: string, fail: (rule: string, why: string) => never): Uint8Array {
  const bytes: number[] = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] === "|") {
      const end = text.indexOf("|", i + 1);
      if (end < 0) fail("E3", "content: unterminated |hex| run");
      const hex = text.slice(i + 1, end).replace(/\s+/g, "");
      if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex))
        fail("E3", `content: bad hex |${text.slice(i + 1, end)}|`);
      for (let j = 0; j < hex.length; j += 2) bytes.push(Number.parseInt(hex.slice(j, j + 2), 16));
      i = end + 1;
    } else {
      const code = text.charCodeAt(i);
      if (code > 0xff) fail("E3", "content: characters above U+00FF must be written as |hex|");
      bytes.push(code);
      i++;
    }
  }
  if (bytes.length === 0) fail("E3", "content is empty");
  if (bytes.length > MAX_CONTENT_BYTES) fail("E3", `content longer than ${MAX_CONTENT_BYTES} bytes`);
  return Uint8Array.from(bytes);
}

function position(
  v: string | null,
  key: string,
  signed: boolean,
  fail: (rule: string, why: string) => never,
) {
  const re = signed ? /^-?[0-9]{1,5}$/ : /^[0-9]{1,5}$/;
  if (v === null || !re.test(v))
    fail("E3", `${key} needs ${signed ? "an integer" : "a non-negative integer"}`);
  const n = Number(v);
  if (Math.abs(n) > MAX_POSITION) fail("E3", `${key} ${n} is beyond the largest packet (${MAX_POSITION})`);
  return n;
}

/** Suricata `pcre:"/re/flags"` → re2js (linear time: no backtracking, no catastrophic patterns). */
function compilePcre(v: string, fail: (rule: string, why: string) => never): { source: string; re: RE2JS } {
  const text = unquote(v, "pcre", fail, true);
  if (text.length > MAX_PCRE_CHARS) fail("E4", `pcre longer than ${MAX_PCRE_CHARS} characters`);
  const m = /^\/(.*)\/([a-zA-Z]*)$/s.exec(text);
  if (!m) fail("E4", "pcre must be written /regex/flags");
  let flags = 0;
  for (const f of m![2]!) {
    if (f === "i") flags |= RE2JS.CASE_INSENSITIVE;
    else if (f === "s") flags |= RE2JS.DOTALL;
    else if (f === "m") flags |= RE2JS.MULTILINE;
    else fail("E4", `pcre flag '${f}' is not supported (supported: i, s, m)`);
  }
  try {
    return { source: text, re: RE2JS.compile(m![1]!, flags) };
  } catch (e) {
    // Backreferences and lookaround are refused here: re2 cannot run them in linear time.
    return fail("E4", `pcre does not compile in a linear-time engine: ${(e as Error).message}`);
  }
}

const HEADER =
  /^(\S+)\s+(\S+)\s+(\[[^\]]*(?:\[[^\]]*\][^\]]*)*\]|\S+)\s+(\[[^\]]*\]|\S+)\s+(->|<>|<-)\s+(\[[^\]]*(?:\[[^\]]*\][^\]]*)*\]|\S+)\s+(\[[^\]]*\]|\S+)\s*\((.*)\)\s*$/s;

/** Parses one rule (already joined across continuation lines). */
export function parseRule(text: string, file: string, line: number): Rule {
  let sid: number | undefined;
  const sidGuess = /\bsid\s*:\s*([0-9]+)\s*;/.exec(text);
  if (sidGuess) sid = Number(sidGuess[1]);
  const fail = (rule: string, why: string): never => {
    throw new RuleError(file, line, sid, rule, why);
  };
  if (text.length > MAX_RULE_CHARS) fail("E1", `rule longer than ${MAX_RULE_CHARS} characters`);
  const h = HEADER.exec(text);
  if (!h) fail("E1", "not a rule: expected 'action proto src sport -> dst dport (options)'");
  const [, action, proto, src, sport, dir, dst, dport, body] = h!;
  if (action !== "alert" && action !== "drop")
    fail("E1", `action '${action}' is not supported (alert, drop)`);
  if (!["tcp", "udp", "ip", "icmp"].includes(proto!))
    fail("E1", `protocol '${proto}' is not supported (tcp, udp, ip, icmp)`);
  if (dir === "<-") fail("E1", "direction '<-' does not exist (use '->' or '<>')");
  const net = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      return fail("E5", (e as Error).message);
    }
  };
  const rule: Rule = {
    action: action as Action,
    proto: proto as Proto,
    src: net(() => parseAddrSet(src!)),
    srcPorts: net(() => parsePortSet(sport!)),
    dst: net(() => parseAddrSet(dst!)),
    dstPorts: net(() => parsePortSet(dport!)),
    bidirectional: dir === "<>",
    msg: "",
    sid: 0,
    rev: 1,
    contents: [],
    pcres: [],
    flow: {},
    file,
    line,
  };
  let sawSid = false;
  for (const [key, value] of splitOptions(body!, fail)) {
    const last = rule.contents[rule.contents.length - 1];
    if (CONTENT_MODIFIERS.has(key)) {
      if (!last) fail("E3", `${key} must follow a content`);
      if (key === "nocase") {
        if (value !== null) fail("E3", "nocase takes no value");
        last!.nocase = true;
      } else if (key === "offset" || key === "depth") {
        if (last!.distance !== undefined || last!.within !== undefined)
          fail("E3", `${key} cannot be mixed with distance/within on one content`);
        last![key] = position(value, key, false, fail);
      } else {
        if (rule.contents.length < 2) fail("E3", `${key} needs a previous content to be relative to`);
        if (last!.offset !== undefined || last!.depth !== undefined)
          fail("E3", `${key} cannot be mixed with offset/depth on one content`);
        last![key as "distance" | "within"] = position(value, key, key === "distance", fail);
      }
      if (last!.depth !== undefined && last!.depth < last!.bytes.length)
        fail("E3", "depth is shorter than the content");
      if (last!.within !== undefined && last!.within < last!.bytes.length)
        fail("E3", "within is shorter than the content");
      continue;
    }
    switch (key) {
      case "msg":
        if (value === null) fail("E2", "msg needs a value");
        rule.msg = unquote(value!, "msg", fail);
        if (rule.msg.length > MAX_MSG_CHARS) fail("E2", `msg longer than ${MAX_MSG_CHARS} characters`);
        break;
      case "sid":
        if (value === null || !/^[1-9][0-9]{0,9}$/.test(value) || Number(value) > 0xffffffff)
          fail("E2", "sid must be a positive 32-bit integer");
        rule.sid = Number(value);
        sid = rule.sid;
        sawSid = true;
        break;
      case "rev":
        if (value === null || !/^[0-9]{1,9}$/.test(value)) fail("E2", "rev must be a non-negative integer");
        rule.rev = Number(value);
        break;
      case "content": {
        if (value === null) fail("E3", "content needs a value");
        const negated = value!.startsWith("!");
        const text = unquote(negated ? value!.slice(1).trim() : value!, "content", fail);
        rule.contents.push({ bytes: contentBytes(text, fail), nocase: false, negated });
        break;
      }
      case "pcre":
        if (value === null) fail("E4", "pcre needs a value");
        rule.pcres.push(compilePcre(value!, fail));
        break;
      case "flow":
        if (value === null) fail("E6", "flow needs a value");
        for (const part of value!.split(",").map((s) => s.trim())) {
          if (part === "to_server" || part === "from_client") rule.flow.toServer = true;
          else if (part === "to_client" || part === "from_server") rule.flow.toServer = false;
          else if (part === "established") rule.flow.established = true;
          else if (part === "not_established") rule.flow.established = false;
          else if (part === "stateless") rule.flow = {};
          else
            fail(
              "E6",
              `flow option '${part}' is not supported (to_server, to_client, established, not_established, stateless)`,
            );
        }
        break;
      default:
        if (INFORMATIONAL.has(key)) break;
        fail("E7", `keyword '${key}' is not supported`);
    }
  }
  if (!sawSid) fail("E2", "sid is missing");
  return rule;
}

export interface ParsedRules {
  rules: Rule[];
  files: string[];
}

/** Largest rule set one package may carry (the 1M-rule file of docs/ips.md loads; more is refused). */
export const MAX_RULES = 1_000_000;

/** Parses every rule of one file. Duplicate sids (E8) are checked across files by `parseRuleFiles`. */
export function* iterateRules(text: string, file: string): Generator<Rule> {
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let l = lines[i]!.replace(/\r$/, "");
    const start = i + 1;
    while (l.endsWith("\\") && i + 1 < lines.length) {
      i++;
      l = l.slice(0, -1) + lines[i]!.replace(/\r$/, "");
    }
    const t = l.trim();
    if (t === "" || t.startsWith("#")) continue;
    yield parseRule(t, file, start);
  }
}

/** Adds one rule, enforcing E8 (duplicate sid) and E9 (rule count; the limit is a parameter for tests). */
function collector(maxRules = MAX_RULES) {
  const rules: Rule[] = [];
  const sids = new Map<number, string>();
  return {
    rules,
    add(r: Rule, file: string): void {
      const prev = sids.get(r.sid);
      if (prev) throw new RuleError(file, r.line, r.sid, "E8", `duplicate sid (first at ${prev})`);
      if (rules.length >= maxRules)
        throw new RuleError(file, r.line, r.sid, "E9", `more than ${maxRules} rules`);
      sids.set(r.sid, `${file}:${r.line}`);
      rules.push(r);
    },
  };
}

export function parseRuleFiles(
  files: { name: string; text: string }[],
  opts: { maxRules?: number } = {},
): ParsedRules {
  const c = collector(opts.maxRules);
  for (const f of files) for (const r of iterateRules(f.text, f.name)) c.add(r, f.name);
  return { rules: c.rules, files: files.map((f) => f.name) };
}

/** parseRuleFiles, yielding to the event loop every 5000 rules (a host must keep answering heartbeats). */
export async function parseRuleFilesAsync(
  files: { name: string; text: () => string }[],
): Promise<ParsedRules> {
  const c = collector();
  let n = 0;
  for (const f of files) {
    for (const r of iterateRules(f.text(), f.name)) {
      c.add(r, f.name);
      if (++n % 5000 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return { rules: c.rules, files: files.map((f) => f.name) };
}
