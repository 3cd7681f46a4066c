/**
 * The vendor side of SXL: an authoritative DNS server for the lookup zone,
 * on UDP and TCP (RFC 7766, 2-byte length prefix), answering lookups from a
 * verdicts file (docs/sxl.md). Unknown lookups get NXDOMAIN with the zone
 * SOA, whose minimum field is the negative-caching TTL (RFC 2308). Answers
 * too large for the requester's UDP size — and, with response rate limiting,
 * answers to a client over its rate ("slip", as BIND's RRL does) — go out
 * truncated, with TC set, so a legitimate client retries over TCP.
 */
import dgram from "node:dgram";
import { readFileSync } from "node:fs";
import net from "node:net";
import { ConfigError } from "../../../core/errors.ts";
import { log } from "../../../core/log.ts";
import { lazySchema } from "../../../core/schema/lazy-schema.ts";
import { z } from "../../../core/schema/zod.ts";
import {
  CLASS_IN,
  CLASSIC_UDP_MAX,
  type DnsMessage,
  type DnsRecord,
  decodeMessage,
  encodeMessage,
  RCODE,
  TYPE,
} from "../../../plugins/reputation/dns.ts";
import {
  detectionId,
  normalizeZone,
  parseQueryName,
  VERDICTS,
  type Verdict,
  verdictAddress,
  verdictText,
} from "./protocol.ts";

const logger = log.child({ component: "sxl-server" });

const RuleSchema = lazySchema(() =>
  z
    .strictObject({
      sha256: z.optional(z.string().check(z.regex(/^[0-9a-fA-F]{64}$/))),
      /** Detection name (hashed to its id) or the id itself. */
      detection: z.optional(z.string().check(z.minLength(1), z.maxLength(256))),
      detectionId: z.optional(z.string().check(z.regex(/^[0-9a-v]{16}$/))),
      verdict: z.enum(VERDICTS),
      sample: z._default(z.boolean(), false),
      ttl: z.optional(z.int().check(z.gte(0), z.lte(7 * 86400))),
      note: z.optional(z.string().check(z.maxLength(2000))),
    })
    .check(
      z.refine(
        (r) => r.sha256 || r.detection || r.detectionId,
        "a rule needs sha256, detection or detectionId",
      ),
    ),
);

export const VerdictsFileSchema = lazySchema(() =>
  z.strictObject({
    zone: z.optional(z.string().check(z.minLength(1))),
    ttl: z._default(z.int().check(z.gte(0), z.lte(7 * 86400)), 300),
    negativeTtl: z._default(z.int().check(z.gte(0), z.lte(86400)), 60),
    verdicts: z.array(RuleSchema).check(z.maxLength(10_000_000)),
  }),
);
export type VerdictsFile = z.infer<typeof VerdictsFileSchema>;

export function loadVerdicts(path: string): VerdictsFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ConfigError("CFG_INVALID", `${path}: not readable JSON (${(e as Error).message})`, {
      file: path,
    });
  }
  const r = VerdictsFileSchema.safeParse(raw);
  if (!r.success)
    throw new ConfigError("CFG_INVALID", `${path}: ${z.prettifyError(r.error)}`, { file: path });
  return r.data;
}

interface Rule {
  verdict: Verdict;
  sample: boolean;
  ttl: number;
  note?: string;
}

/** Verdict lookup with precedence: hash+detection, then hash, then detection. */
export class VerdictTable {
  private readonly exact = new Map<string, Rule>();
  private readonly byHash = new Map<string, Rule>();
  private readonly byDetection = new Map<string, Rule>();

  constructor(readonly file: VerdictsFile) {
    for (const r of file.verdicts) {
      const rule: Rule = {
        verdict: r.verdict,
        sample: r.sample,
        ttl: r.ttl ?? file.ttl,
        ...(r.note ? { note: r.note } : {}),
      };
      const det = r.detectionId ?? (r.detection ? detectionId(r.detection) : undefined);
      const h = r.sha256?.toLowerCase();
      if (h && det) this.exact.set(`${h}/${det}`, rule);
      else if (h) this.byHash.set(h, rule);
      else if (det) this.byDetection.set(det, rule);
    }
  }

  find(sha256: string, det: string): Rule | undefined {
    return this.exact.get(`${sha256}/${det}`) ?? this.byHash.get(sha256) ?? this.byDetection.get(det);
  }
}

export interface RrlOptions {
  /** UDP responses per second per client address; past it, answers slip (TC=1). */
  ratePerSecond: number;
  burst: number;
}

export interface SxlServerOptions {
  zone: string;
  verdicts: VerdictsFile;
  host?: string;
  port?: number;
  rrl?: RrlOptions;
  now?: () => number;
}

export interface SxlServer {
  host: string;
  port: number;
  zone: string;
  stats: {
    udp: number;
    tcp: number;
    truncated: number;
    answered: number;
    nxdomain: number;
    refused: number;
    malformed: number;
  };
  reload(verdicts: VerdictsFile): void;
  stop(): Promise<void>;
}

function soaRecord(zone: string, negativeTtl: number): DnsRecord {
  return {
    name: zone,
    type: TYPE.SOA,
    class: CLASS_IN,
    ttl: negativeTtl,
    data: {
      type: "SOA",
      soa: {
        mname: `ns.${zone}`,
        rname: `hostmaster.${zone}`,
        serial: 1,
        refresh: 3600,
        retry: 600,
        expire: 86400,
        minimum: negativeTtl,
      },
    },
  };
}

/** Answers one query. Exported for tests; the sockets below only add transport. */
export function answerQuery(query: DnsMessage, zone: string, table: VerdictTable): DnsMessage {
  const reply = (rcode: number, answers: DnsRecord[] = [], authorities: DnsRecord[] = []): DnsMessage => ({
    id: query.id,
    flags: {
      qr: true,
      opcode: query.flags.opcode,
      aa: rcode !== RCODE.REFUSED,
      tc: false,
      rd: query.flags.rd,
      ra: false,
      rcode,
    },
    questions: query.questions,
    answers,
    authorities,
    additionals: [],
  });
  if (query.flags.opcode !== 0) return reply(RCODE.NOTIMP);
  if (query.questions.length !== 1) return reply(RCODE.FORMERR);
  const q = query.questions[0]!;
  const lower = q.name.toLowerCase().replace(/\.$/, "");
  const soa = soaRecord(zone, table.file.negativeTtl);
  if (lower !== zone && !lower.endsWith(`.${zone}`)) return reply(RCODE.REFUSED);
  if (lower === zone) {
    return q.type === TYPE.SOA
      ? reply(RCODE.NOERROR, [{ ...soa, name: q.name }])
      : reply(RCODE.NOERROR, [], [soa]);
  }
  const lookup = parseQueryName(q.name, zone);
  const rule = lookup ? table.find(lookup.sha256, lookup.detectionId) : undefined;
  if (!rule) return reply(RCODE.NXDOMAIN, [], [soa]);
  // The answer echoes the question's spelling (clients check the 0x20 case pattern).
  if (q.type === TYPE.A && q.class === CLASS_IN) {
    return reply(RCODE.NOERROR, [
      {
        name: q.name,
        type: TYPE.A,
        class: CLASS_IN,
        ttl: rule.ttl,
        data: { type: "A", address: verdictAddress(rule.verdict, rule.sample) },
      },
    ]);
  }
  if (q.type === TYPE.TXT || q.type === TYPE.ANY) {
    return reply(RCODE.NOERROR, [
      {
        name: q.name,
        type: TYPE.TXT,
        class: CLASS_IN,
        ttl: rule.ttl,
        data: { type: "TXT", strings: verdictText(rule.verdict, rule.sample, rule.note) },
      },
    ]);
  }
  return reply(RCODE.NOERROR, [], [soa]);
}

function truncated(m: DnsMessage): DnsMessage {
  return { ...m, flags: { ...m.flags, tc: true }, answers: [], authorities: [], additionals: [] };
}

export async function startSxlServer(opts: SxlServerOptions, retries = 20): Promise<SxlServer> {
  const zone = normalizeZone(opts.zone);
  const host = opts.host ?? "127.0.0.1";
  const now = opts.now ?? (() => performance.now());
  let table = new VerdictTable(opts.verdicts);
  const stats: SxlServer["stats"] = {
    udp: 0,
    tcp: 0,
    truncated: 0,
    answered: 0,
    nxdomain: 0,
    refused: 0,
    malformed: 0,
  };
  const buckets = new Map<string, { tokens: number; at: number }>();

  const allowUdp = (addr: string): boolean => {
    if (!opts.rrl) return true;
    const t = now();
    const b = buckets.get(addr) ?? { tokens: opts.rrl.burst, at: t };
    b.tokens = Math.min(opts.rrl.burst, b.tokens + ((t - b.at) / 1000) * opts.rrl.ratePerSecond);
    b.at = t;
    buckets.set(addr, b);
    if (buckets.size > 100_000) buckets.clear();
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return true;
    }
    return false;
  };

  const handle = (bytes: Uint8Array): DnsMessage | null => {
    let query: DnsMessage;
    try {
      query = decodeMessage(bytes);
    } catch {
      stats.malformed++;
      return null;
    }
    if (query.flags.qr) return null;
    const answer = answerQuery(query, zone, table);
    if (answer.flags.rcode === RCODE.NXDOMAIN) stats.nxdomain++;
    else if (answer.flags.rcode === RCODE.REFUSED) stats.refused++;
    else stats.answered++;
    return answer;
  };

  const udp = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
  udp.on("message", (msg, rinfo) => {
    stats.udp++;
    const bytes = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
    const answer = handle(bytes);
    if (!answer) return;
    const opt = decodeSafe(bytes)?.additionals.find((r) => r.type === TYPE.OPT);
    const max = opt ? Math.max(CLASSIC_UDP_MAX, Math.min(opt.class, 4096)) : CLASSIC_UDP_MAX;
    let wire = encodeMessage(answer);
    if (wire.length > max || !allowUdp(rinfo.address)) {
      stats.truncated++;
      wire = encodeMessage(truncated(answer));
    }
    udp.send(wire, rinfo.port, rinfo.address);
  });
  const tcpSockets = new Set<net.Socket>();
  const tcp = net.createServer((sock) => {
    tcpSockets.add(sock);
    sock.setTimeout(10_000, () => sock.destroy());
    let pending = Buffer.alloc(0);
    sock.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) break;
        const msg = new Uint8Array(pending.subarray(2, 2 + len));
        pending = pending.subarray(2 + len);
        stats.tcp++;
        const answer = handle(msg);
        if (!answer) {
          sock.destroy();
          return;
        }
        const wire = encodeMessage(answer);
        const frame = Buffer.alloc(2 + wire.length);
        frame.writeUInt16BE(wire.length, 0);
        frame.set(wire, 2);
        sock.write(frame);
      }
      if (pending.length > 65_537) sock.destroy();
    });
    sock.on("error", () => sock.destroy());
    sock.on("close", () => tcpSockets.delete(sock));
  });

  // UDP and TCP share one port number: bind UDP first (port 0 picks one), then TCP on it.
  await new Promise<void>((resolve, reject) => {
    udp.once("error", reject);
    udp.bind(opts.port ?? 0, host, () => {
      udp.off("error", reject);
      resolve();
    });
  });
  const port = udp.address().port;
  try {
    await new Promise<void>((resolve, reject) => {
      tcp.once("error", reject);
      tcp.listen(port, host, () => {
        tcp.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    await new Promise<void>((r) => udp.close(() => r()));
    // Someone holds that TCP port: with an ephemeral port, let UDP pick again.
    if (opts.port || retries <= 0) throw e;
    return startSxlServer(opts, retries - 1);
  }
  logger.info("sxl server listening", { host, port, zone, rules: opts.verdicts.verdicts.length });
  return {
    host,
    port,
    zone,
    stats,
    reload(v) {
      table = new VerdictTable(v);
      logger.info("verdicts reloaded", { rules: v.verdicts.length });
    },
    async stop() {
      for (const s of tcpSockets) s.destroy();
      await Promise.all([
        new Promise<void>((r) => udp.close(() => r())),
        new Promise<void>((r) => tcp.close(() => r())),
      ]);
    },
  };
}

function decodeSafe(b: Uint8Array): DnsMessage | null {
  try {
    return decodeMessage(b);
  } catch {
    return null;
  }
}
