/**
 * The agent side of SXL (docs/sxl.md): one lookup = one DNS query for
 * `<hash>.<detection>.v1.<zone>` to the configured resolver, over UDP with
 * a TCP retry when the answer comes back truncated. The client never makes
 * a detection worse by failing: a timeout, an error, a rate limit or an open
 * circuit all come back as `failed`, and the caller keeps its local verdict.
 *
 * Answers are trusted only if they match the query exactly — transaction
 * id, and the question echoed in the same randomised letter case (DNS 0x20)
 * — from a fresh source port per query. Verdicts are cached for the answer's
 * TTL (clamped); "no information" (NXDOMAIN) for the SOA minimum (RFC 2308).
 */
import type dgram from "node:dgram";
import { readFileSync } from "node:fs";
import { isIPv6 } from "../../../core/ip-address.ts";
import { nodeDgram, nodeNet } from "../../../core/lazy-builtins.ts";
import { log } from "../../../core/log.ts";
import {
  type DnsMessage,
  decodeMessage,
  encodeMessage,
  queryMessage,
  RCODE,
  TYPE,
} from "../../../plugins/reputation/dns.ts";
import { detectionId, parseVerdictAddress, queryName, randomizeCase, type Verdict } from "./protocol.ts";

const logger = log.child({ component: "sxl" });

export interface Resolver {
  host: string;
  port: number;
}

export interface SxlClientOptions {
  zone: string;
  resolver: Resolver;
  /** Per attempt; the whole lookup takes at most attempts × timeoutMs plus one TCP timeout. */
  timeoutMs: number;
  attempts: number;
  ratePerSecond: number;
  burst: number;
  cacheSize: number;
  minTtlSeconds: number;
  maxTtlSeconds: number;
  /** Negative-cache time when an NXDOMAIN carries no SOA. */
  negativeTtlSeconds: number;
  /** Consecutive transport failures that open the circuit, and for how long. */
  failureThreshold: number;
  cooldownMs: number;
  now?: () => number;
  random?: () => number;
}

export const DEFAULT_SXL_OPTIONS: Omit<SxlClientOptions, "zone" | "resolver"> = {
  timeoutMs: 1000,
  attempts: 2,
  ratePerSecond: 50,
  burst: 100,
  cacheSize: 50_000,
  minTtlSeconds: 30,
  maxTtlSeconds: 86_400,
  negativeTtlSeconds: 300,
  failureThreshold: 3,
  cooldownMs: 30_000,
};

export type SxlResult =
  | {
      status: "answered";
      verdict: Verdict;
      sample: boolean;
      ttl: number;
      transport: "udp" | "tcp" | "cache";
    }
  | { status: "no-information"; ttl: number; transport: "udp" | "tcp" | "cache" }
  | {
      status: "failed";
      reason: "timeout" | "rate-limited" | "server-error" | "bad-answer" | "circuit-open" | "network";
      detail: string;
    };

export interface SxlStats {
  lookups: number;
  queries: number;
  udp: number;
  tcp: number;
  cacheHits: number;
  rateLimited: number;
  failures: number;
  answered: number;
  noInformation: number;
  circuitOpen: boolean;
}

/** UDP sockets kept open, and queries each carries before it is replaced by one on a new port. */
const UDP_SOCKETS = 4;
const SOCKET_USES = 1024;

interface UdpSlot {
  sock: dgram.Socket;
  uses: number;
  inflight: number;
  retiring: boolean;
  waiters: Map<string, Waiter>;
}

interface Waiter {
  deadline: number;
  resolve(m: DnsMessage): void;
  reject(e: Error): void;
}

/** Resolution of UDP timeouts: one shared timer instead of one per query. */
const DEADLINE_TICK_MS = 25;

type Cached = { result: Extract<SxlResult, { status: "answered" | "no-information" }>; expires: number };

class Failure extends Error {
  constructor(
    readonly reason: Extract<SxlResult, { status: "failed" }>["reason"],
    message: string,
  ) {
    super(message);
  }
}

/** "host:port", "[v6]:port", "host" (port 53) or "system" (first nameserver in /etc/resolv.conf). */
export function parseResolver(spec: string, resolvConf = "/etc/resolv.conf"): Resolver {
  if (spec === "system") {
    let text = "";
    try {
      text = readFileSync(resolvConf, "utf8");
    } catch {
      // No resolv.conf: fall through to the loopback resolver.
    }
    const m = text.match(/^\s*nameserver\s+(\S+)/m);
    return { host: m?.[1] ?? "127.0.0.1", port: 53 };
  }
  const v6 = spec.match(/^\[([^\]]+)\](?::(\d+))?$/);
  if (v6) return { host: v6[1]!, port: v6[2] ? Number(v6[2]) : 53 };
  if (isIPv6(spec)) return { host: spec, port: 53 };
  const [host, port] = spec.split(":");
  return { host: host!, port: port ? Number(port) : 53 };
}

export class SxlClient {
  private readonly o: SxlClientOptions;
  private readonly now: () => number;
  private readonly cache = new Map<string, Cached>();
  private tokens: number;
  private tokensAt: number;
  private consecutiveFailures = 0;
  private slots: UdpSlot[] = [];
  private deadlineTimer?: ReturnType<typeof setInterval>;
  private nextSlot = 0;
  private openUntil = 0;
  readonly stats: SxlStats = {
    lookups: 0,
    queries: 0,
    udp: 0,
    tcp: 0,
    cacheHits: 0,
    rateLimited: 0,
    failures: 0,
    answered: 0,
    noInformation: 0,
    circuitOpen: false,
  };

  constructor(opts: Partial<SxlClientOptions> & Pick<SxlClientOptions, "zone" | "resolver">) {
    this.o = { ...DEFAULT_SXL_OPTIONS, ...opts };
    this.now = this.o.now ?? Date.now;
    this.tokens = this.o.burst;
    this.tokensAt = this.now();
  }

  async lookup(sha256: string, detection: string): Promise<SxlResult> {
    this.stats.lookups++;
    const key = `${sha256.toLowerCase()}/${detectionId(detection)}`;
    const now = this.now();
    const hit = this.cache.get(key);
    if (hit && hit.expires > now) {
      this.stats.cacheHits++;
      // Refresh recency for the LRU.
      this.cache.delete(key);
      this.cache.set(key, hit);
      return { ...hit.result, transport: "cache" };
    }
    if (hit) this.cache.delete(key);
    if (now < this.openUntil) {
      return { status: "failed", reason: "circuit-open", detail: "resolver failing; lookups paused" };
    }
    this.stats.circuitOpen = false;
    if (!this.takeToken(now)) {
      this.stats.rateLimited++;
      return { status: "failed", reason: "rate-limited", detail: `over ${this.o.ratePerSecond} lookups/s` };
    }
    let result: SxlResult;
    try {
      result = await this.query(queryName(sha256, detection, this.o.zone));
      this.consecutiveFailures = 0;
    } catch (e) {
      const f = e instanceof Failure ? e : new Failure("network", (e as Error).message);
      this.stats.failures++;
      if (f.reason === "timeout" || f.reason === "network") {
        if (++this.consecutiveFailures >= this.o.failureThreshold) {
          this.openUntil = this.now() + this.o.cooldownMs;
          this.stats.circuitOpen = true;
          logger.warn("sxl resolver failing; pausing lookups", {
            resolver: this.o.resolver,
            cooldownMs: this.o.cooldownMs,
          });
        }
      }
      return { status: "failed", reason: f.reason, detail: f.message };
    }
    if (result.status !== "failed") {
      if (result.status === "answered") this.stats.answered++;
      else this.stats.noInformation++;
      this.remember(key, result);
    }
    return result;
  }

  private takeToken(now: number): boolean {
    this.tokens = Math.min(this.o.burst, this.tokens + ((now - this.tokensAt) / 1000) * this.o.ratePerSecond);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private remember(key: string, result: Cached["result"]): void {
    const ttl = Math.min(this.o.maxTtlSeconds, Math.max(this.o.minTtlSeconds, result.ttl));
    if (ttl <= 0) return;
    this.cache.set(key, { result, expires: this.now() + ttl * 1000 });
    while (this.cache.size > this.o.cacheSize) this.cache.delete(this.cache.keys().next().value!);
  }

  private async query(name: string): Promise<SxlResult> {
    const id = crypto.getRandomValues(new Uint16Array(1))[0]!;
    const qname = randomizeCase(name, this.o.random);
    const wire = encodeMessage(queryMessage(id, qname, TYPE.A, { udpSize: 1232 }));
    let lastTimeout: Failure | undefined;
    for (let attempt = 0; attempt < this.o.attempts; attempt++) {
      let reply: DnsMessage;
      try {
        this.stats.queries++;
        this.stats.udp++;
        reply = await this.udp(wire, id, qname);
      } catch (e) {
        if (e instanceof Failure && e.reason === "timeout") {
          lastTimeout = e;
          continue;
        }
        throw e;
      }
      if (reply.flags.tc) {
        this.stats.tcp++;
        return this.interpret(await this.tcp(wire, id, qname), qname, "tcp");
      }
      return this.interpret(reply, qname, "udp");
    }
    throw lastTimeout ?? new Failure("timeout", "no answer");
  }

  private checkReply(reply: DnsMessage, id: number, qname: string): boolean {
    const q = reply.questions[0];
    return (
      reply.id === id &&
      reply.flags.qr &&
      reply.questions.length === 1 &&
      q?.name === qname &&
      q.type === TYPE.A
    );
  }

  private interpret(reply: DnsMessage, qname: string, transport: "udp" | "tcp"): SxlResult {
    const rcode = reply.flags.rcode;
    if (rcode === RCODE.NXDOMAIN || (rcode === RCODE.NOERROR && reply.answers.length === 0)) {
      const soa = reply.authorities.find((r) => r.data.type === "SOA");
      const ttl =
        soa && soa.data.type === "SOA" ? Math.min(soa.ttl, soa.data.soa.minimum) : this.o.negativeTtlSeconds;
      return { status: "no-information", ttl, transport };
    }
    if (rcode !== RCODE.NOERROR) throw new Failure("server-error", `resolver answered rcode ${rcode}`);
    const a = reply.answers.find((r) => r.data.type === "A" && r.name.toLowerCase() === qname.toLowerCase());
    if (a?.data.type !== "A") throw new Failure("bad-answer", "no A record for the query name");
    const v = parseVerdictAddress(a.data.address);
    if (!v) throw new Failure("bad-answer", `answer ${a.data.address} is not an SXL verdict code`);
    return { status: "answered", verdict: v.verdict, sample: v.sample, ttl: a.ttl, transport };
  }

  /**
   * UDP through a small pool of sockets, each bound to a fresh random port
   * and replaced after SOCKET_USES queries: source-port entropy stays (with
   * the id and the 0x20 case pattern) without a socket per lookup.
   */
  private udp(wire: Uint8Array, id: number, qname: string): Promise<DnsMessage> {
    const { host, port } = this.o.resolver;
    const slot = this.socketFor(host);
    slot.uses++;
    slot.inflight++;
    return new Promise<DnsMessage>((resolve, reject) => {
      const key = `${id}/${qname}`;
      const done = (f: () => void) => {
        slot.waiters.delete(key);
        slot.inflight--;
        this.retire(slot);
        f();
      };
      slot.waiters.set(key, {
        // Transport time is real time, whatever clock the cache and rate limiter are given.
        deadline: performance.now() + this.o.timeoutMs,
        resolve: (reply) => done(() => resolve(reply)),
        reject: (e) => done(() => reject(e)),
      });
      this.watchDeadlines();
      // Send errors arrive as the socket's "error" event, which fails its waiters.
      slot.sock.send(wire, port, host);
    });
  }

  private socketFor(host: string): UdpSlot {
    const live = this.slots.filter((s) => !s.retiring);
    if (live.length < UDP_SOCKETS) {
      const sock = nodeDgram().createSocket(isIPv6(host) ? "udp6" : "udp4");
      // Idle lookup sockets must not keep the agent (or a CLI) alive.
      sock.unref();
      const slot: UdpSlot = { sock, uses: 0, inflight: 0, retiring: false, waiters: new Map() };
      sock.on("message", (msg) => {
        let reply: DnsMessage;
        try {
          reply = decodeMessage(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
        } catch {
          return; // Garbage is not an answer; keep waiting for the real one.
        }
        // Only an exact match of id and question (letter case included) is taken (spoofing defence).
        const q = reply.questions[0];
        const waiter = q ? slot.waiters.get(`${reply.id}/${q.name}`) : undefined;
        if (waiter && this.checkReply(reply, reply.id, q!.name)) waiter.resolve(reply);
      });
      sock.on("error", (e) => {
        for (const w of [...slot.waiters.values()]) w.reject(new Failure("network", e.message));
        slot.retiring = true;
        this.retire(slot);
      });
      this.slots.push(slot);
      return slot;
    }
    const slot = live[this.nextSlot++ % live.length]!;
    if (slot.uses >= SOCKET_USES) slot.retiring = true;
    return slot;
  }

  /** One timer for all UDP queries in flight: expired waiters fail with a timeout. */
  private watchDeadlines(): void {
    if (this.deadlineTimer) return;
    this.deadlineTimer = setInterval(
      () => {
        const now = performance.now();
        let pending = 0;
        for (const slot of [...this.slots]) {
          for (const w of [...slot.waiters.values()]) {
            if (w.deadline <= now)
              w.reject(
                new Failure(
                  "timeout",
                  `no UDP answer from ${this.o.resolver.host}:${this.o.resolver.port} in ${this.o.timeoutMs} ms`,
                ),
              );
            else pending++;
          }
        }
        if (pending === 0) {
          clearInterval(this.deadlineTimer);
          this.deadlineTimer = undefined;
        }
      },
      Math.min(DEADLINE_TICK_MS, this.o.timeoutMs),
    );
    this.deadlineTimer.unref?.();
  }

  private retire(slot: UdpSlot): void {
    if (!slot.retiring || slot.inflight > 0) return;
    this.slots = this.slots.filter((s) => s !== slot);
    try {
      slot.sock.close();
    } catch {
      // Already closed after an error.
    }
  }

  /** Closes the client's sockets (lookups in flight fail). */
  close(): void {
    for (const slot of this.slots) {
      slot.retiring = true;
      for (const w of [...slot.waiters.values()]) w.reject(new Failure("network", "client closed"));
      this.retire(slot);
    }
  }

  private tcp(wire: Uint8Array, id: number, qname: string): Promise<DnsMessage> {
    const { host, port } = this.o.resolver;
    return new Promise((resolve, reject) => {
      const sock = nodeNet().connect({ host, port });
      let buf = Buffer.alloc(0);
      const done = (f: () => void) => {
        clearTimeout(timer);
        sock.destroy();
        f();
      };
      const timer = setTimeout(
        () => done(() => reject(new Failure("timeout", `no TCP answer from ${host}:${port}`))),
        this.o.timeoutMs,
      );
      sock.on("error", (e) => done(() => reject(new Failure("network", e.message))));
      sock.on("connect", () => {
        const frame = Buffer.alloc(2 + wire.length);
        frame.writeUInt16BE(wire.length, 0);
        frame.set(wire, 2);
        sock.write(frame);
      });
      sock.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length < 2) return;
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) return;
        let reply: DnsMessage;
        try {
          reply = decodeMessage(new Uint8Array(buf.subarray(2, 2 + len)));
        } catch (e) {
          done(() => reject(new Failure("bad-answer", (e as Error).message)));
          return;
        }
        if (!this.checkReply(reply, id, qname)) {
          done(() => reject(new Failure("bad-answer", "TCP answer does not match the query")));
          return;
        }
        done(() => resolve(reply));
      });
    });
  }
}
