/**
 * syslog destination: each result row one RFC 5424 message whose
 * structured data carries the batch key and the row's seq
 * (`[outpost@32473 key="g:1-500" seq="17"]`), so a row a retry delivered
 * twice is recognisable downstream.
 *
 * Transports: "relp" (default for host + port) is the only one where the
 * server acknowledges what it stored, so a batch is done only when every
 * message got RELP's "200 OK"; a connection lost mid-batch resends the
 * whole batch (duplicates then carry the same key + seq). "tcp" (RFC 6587
 * octet counting) and a unix stream `socket` are done once the kernel took
 * the bytes; "udp" once the datagrams left — both can lose messages
 * silently and are documented as such (docs/sinks.md).
 *
 * Messages longer than `maxMessageBytes` are cut at a UTF-8 boundary and
 * marked with `truncated="<original bytes>"` in the structured data
 * (counted in `truncatedRows`): syslog servers cut or refuse them otherwise.
 */
import type { Socket } from "node:net";
import { hostname } from "node:os";
import { nodeDgram, nodeNet } from "../../core/lazy-builtins.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import type { Destination, Outcome, OutgoingBatch } from "./queued-sink.ts";
import { RelpClient } from "./relp.ts";
import { cleanText } from "./result-rows.ts";

const FACILITIES = [
  "kern",
  "user",
  "mail",
  "daemon",
  "auth",
  "syslog",
  "lpr",
  "news",
  "uucp",
  "cron",
  "authpriv",
  "ftp",
  "ntp",
  "audit",
  "alert",
  "clock",
  "local0",
  "local1",
  "local2",
  "local3",
  "local4",
  "local5",
  "local6",
  "local7",
] as const;

/**
 * Splits `host:port`, `[v6]:port`, `name` or `[v6]` into host and port (undefined when none is
 * given); an error message when the text is not one of those. A bare IPv6 address (`::1`, more
 * than one colon, no brackets) is a host without port.
 */
export function splitHostPort(text: string): { host: string; port?: number } | string {
  const withPort = (host: string, port: string | undefined) => {
    if (port === undefined) return { host };
    const n = Number(port);
    return n >= 1 && n <= 65535 ? { host, port: n } : `port ${port} is not in 1-65535`;
  };
  const bracketed = /^\[([^\]\s]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) return withPort(bracketed[1]!, bracketed[2]);
  if (/^[0-9A-Fa-f:.]+(%[\w.-]+)?$/.test(text) && text.split(":").length > 2) return { host: text };
  const plain = /^([^:\s[\]]+)(?::(\d+))?$/.exec(text);
  if (plain) return withPort(plain[1]!, plain[2]);
  return `"${text}" is not host, host:port or [IPv6]:port`;
}

const SyslogInputSchema = lazySchema(() =>
  z.strictObject({
    /** Unix stream socket (e.g. rsyslog imptcp `path=`); exclusive with the network target. */
    socket: z.optional(z.string().check(z.minLength(1))),
    /** `host:port` or `[IPv6]:port` — the issue's spelling of the target. */
    address: z.optional(z.string().check(z.minLength(1))),
    /** A name or address, optionally carrying `:port` itself (`siem:514`, `[::1]:514`). */
    host: z.optional(z.string().check(z.minLength(1))),
    port: z.optional(z.int().check(z.gte(1), z.lte(65535))),
    /** Default "relp" for a network target: only RELP acknowledges what the server stored. */
    protocol: z._default(z.enum(["udp", "tcp", "relp"]), "relp"),
    facility: z._default(z.enum(FACILITIES), "local0"),
    format: z._default(z.literal("rfc5424"), "rfc5424"),
    appName: z._default(z.string().check(z.regex(/^[!-~]{1,48}$/)), "outpost"),
    /** HOSTNAME field; default: this machine's host name. */
    hostname: z.optional(z.string().check(z.regex(/^[!-~]{1,255}$/))),
    maxMessageBytes: z._default(z.int().check(z.gte(1024), z.lte(16 * 1024 * 1024)), 64 * 1024),
    /** RELP: messages sent before waiting for acknowledgements. */
    window: z._default(z.int().check(z.gte(1), z.lte(1024)), 128),
    timeoutSeconds: z._default(z.number().check(z.positive(), z.lte(600)), 30),
  }),
);

const TARGET = "set `socket`, or `address` (host:port), or `host` with `port` (or `host` as host:port)";

/**
 * The syslog sink's config. The target is one of: `socket`; `address: "host:port"`; `host:
 * "host:port"`; `host` + `port`. It comes out as `socket` or `host` + `port`, errors naming the
 * key at fault.
 */
export const SyslogSinkSchema = lazySchema(() =>
  z.pipe(
    SyslogInputSchema,
    z.transform((c, ctx) => {
      const { address, ...rest } = c;
      const fail = (path: string, message: string) => {
        ctx.issues.push({ code: "custom", path: [path], message, input: c });
        return z.NEVER;
      };
      if (c.socket !== undefined) {
        for (const k of ["address", "host", "port"] as const)
          if (c[k] !== undefined) return fail(k, `not with \`socket\`: ${TARGET}`);
        return { ...rest, socket: c.socket, host: undefined, port: undefined };
      }
      const key = address !== undefined ? "address" : "host";
      const text = address ?? c.host;
      if (text === undefined) return fail(c.port !== undefined ? "host" : "address", `missing: ${TARGET}`);
      if (address !== undefined && c.host !== undefined)
        return fail("host", `not with \`address\`: ${TARGET}`);
      const split = splitHostPort(text);
      if (typeof split === "string") return fail(key, split);
      if (split.port !== undefined && c.port !== undefined)
        return fail("port", `the port is already in \`${key}\` ("${text}"); give it once`);
      const port = split.port ?? c.port;
      if (port === undefined)
        return key === "address"
          ? fail("address", `missing port: "${text}" is not host:port`)
          : fail("port", `missing: no port in \`host\` ("${text}") and no \`port\``);
      return { ...rest, socket: undefined, host: split.host, port };
    }),
  ),
);
export type SyslogSinkConfig = z.output<typeof SyslogSinkSchema>;

const INFO = 6;
const SD_ID = "outpost@32473";

/** RFC 5424 §6.3.3: `"`, `\` and `]` are escaped inside PARAM-VALUE. */
const sdValue = (s: string) => s.replace(/["\\\]]/g, (c) => `\\${c}`);
const printable = (s: string, max: number) => s.replace(/[^!-~]/g, "_").slice(0, max) || "-";

/** Cuts `s` to at most `max` UTF-8 bytes without splitting a character. */
function cutUtf8(s: string, max: number): string {
  const b = Buffer.from(s, "utf8");
  if (b.length <= max) return s;
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end).toString("utf8");
}

export class SyslogDestination implements Destination {
  readonly name: string;
  readonly kind = "syslog";
  readonly counters = { truncatedRows: 0, replacedChars: 0 };
  private readonly pri: number;
  private readonly host: string;
  private relp?: RelpClient;
  private stream?: Socket;

  constructor(private readonly cfg: SyslogSinkConfig) {
    this.name = cfg.socket
      ? `syslog:${cfg.socket}`
      : `syslog:${cfg.protocol}://${cfg.host!.includes(":") ? `[${cfg.host}]` : cfg.host}:${cfg.port}`;
    this.pri = FACILITIES.indexOf(cfg.facility) * 8 + INFO;
    this.host = printable(cfg.hostname ?? hostname(), 255);
  }

  /** One row as an RFC 5424 message (no framing); `tally` counts what was replaced or cut. */
  format(line: string, key: string, seq: number, tally = { replaced: 0, truncated: 0 }): string {
    const count = { n: 0 };
    let msg = cleanText(line, count);
    tally.replaced += count.n;
    let name = "-";
    let time = new Date();
    try {
      const o = JSON.parse(msg) as { name?: unknown; unixTime?: unknown };
      if (typeof o.name === "string") name = o.name;
      const t = Number(o.unixTime);
      if (Number.isFinite(t) && t > 0) time = new Date(t * 1000);
    } catch {}
    let sd = `key="${sdValue(key)}" seq="${seq}"`;
    const bytes = Buffer.byteLength(msg, "utf8");
    if (bytes > this.cfg.maxMessageBytes) {
      msg = cutUtf8(msg, this.cfg.maxMessageBytes);
      sd += ` truncated="${bytes}"`;
      tally.truncated++;
    }
    return `<${this.pri}>1 ${time.toISOString()} ${this.host} ${this.cfg.appName} ${process.pid} ${printable(name, 32)} [${SD_ID} ${sd}] ${msg}`;
  }

  async deliver(b: OutgoingBatch, signal: AbortSignal): Promise<Outcome> {
    // Counted once the batch is delivered, so retries do not count the same rows again.
    const tally = { replaced: 0, truncated: 0 };
    const messages = b.lines().map((l, i) => this.format(l, b.key, b.first + i, tally));
    try {
      if (this.cfg.socket || this.cfg.protocol === "tcp") await this.sendStream(messages);
      else if (this.cfg.protocol === "udp") await this.sendUdp(messages);
      else {
        if (!this.relp?.connected) {
          this.relp = new RelpClient({
            host: this.cfg.host!,
            port: this.cfg.port!,
            timeoutMs: this.cfg.timeoutSeconds * 1000,
          });
          await this.relp.open(signal);
        }
        await this.relp.sendAll(messages, this.cfg.window, signal);
      }
      this.counters.replacedChars += tally.replaced;
      this.counters.truncatedRows += tally.truncated;
      return { kind: "done" };
    } catch (e) {
      this.stream?.destroy();
      this.stream = undefined;
      return { kind: "retry", error: `${this.name}: ${(e as Error).message}` };
    }
  }

  /** RFC 6587 octet counting over TCP or a unix stream socket. */
  private async sendStream(messages: string[]): Promise<void> {
    if (!this.stream || this.stream.destroyed) {
      const s = this.cfg.socket
        ? nodeNet().connect({ path: this.cfg.socket })
        : nodeNet().connect({ host: this.cfg.host!, port: this.cfg.port! });
      await new Promise<void>((resolve, reject) => {
        s.once("connect", resolve);
        s.once("error", reject);
      });
      s.on("error", () => s.destroy());
      this.stream = s;
    }
    const s = this.stream;
    const data = Buffer.concat(
      messages.map((m) => {
        const body = Buffer.from(m, "utf8");
        return Buffer.concat([Buffer.from(`${body.length} `), body]);
      }),
    );
    await new Promise<void>((resolve, reject) => s.write(data, (e) => (e ? reject(e) : resolve())));
  }

  private async sendUdp(messages: string[]): Promise<void> {
    const sock = nodeDgram().createSocket(this.cfg.host!.includes(":") ? "udp6" : "udp4");
    try {
      for (const m of messages)
        await new Promise<void>((resolve, reject) =>
          sock.send(Buffer.from(m, "utf8"), this.cfg.port!, this.cfg.host!, (e) =>
            e ? reject(e) : resolve(),
          ),
        );
    } finally {
      sock.close();
    }
  }

  async close(): Promise<void> {
    await this.relp?.close();
    this.stream?.end();
  }
}
