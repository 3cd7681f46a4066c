/**
 * The TELEMSUP document (seed: "a JSON document describing how often and
 * where to submit telemetry", unchanged since 2016):
 *
 *   { "additionalHeaders": "x-amz-acl:bucket-owner-full-control", "port": 0,
 *     "resourceRoot": "prod", "server": "t1.example.com", "verb": "PUT", "interval": 86400 }
 *
 * Checks are pure and I/O-free, in the style of python-tuf's ngclient
 * validators; each cites the rule it enforces:
 *   TS1 verb is PUT or POST
 *   TS2 server is a DNS host name (no scheme, no port, no user info, no IP literal tricks)
 *   TS3 port is 0 (the scheme's default) or 1..65535
 *   TS4 interval is 300 s .. 7 days (0 or a flood of reports is refused)
 *   TS5 header names are RFC 9110 tokens, values printable with no CR/LF/NUL, and none
 *       of the headers the agent sets itself (authorization, host, content-*, idempotency-key…)
 *   TS6 resourceRoot is a relative path of safe segments (no "..", no "//", no query, no fragment)
 *   TS7 no field beyond these (strict)
 *   TS8 the server is one the agent's config pins (telemetry.allowedServers) — checked by
 *       `resolveTarget`, in the supervisor, which holds the config
 */

import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import type { AllowedServer } from "../../core/telemetry/config.ts";

export const TELEMSUP_FILE = "telemsup.json";
export const MIN_INTERVAL_SECONDS = 300;
export const MAX_INTERVAL_SECONDS = 7 * 86400;

/** Headers the agent sets itself; content may not override or add them (TS5). */
const RESERVED_HEADERS = new Set([
  "authorization",
  "proxy-authorization",
  "host",
  "content-length",
  "content-type",
  "content-encoding",
  "transfer-encoding",
  "connection",
  "idempotency-key",
  "cookie",
  "expect",
  "te",
  "upgrade",
]);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;
const HOSTNAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;
const SEGMENT = /^[A-Za-z0-9._~-]{1,64}$/;

export interface Header {
  name: string;
  value: string;
}

/** TS5: one `name:value` header. Returns the reason it is refused, or the header. */
export function parseHeader(raw: string): Header | string {
  if (/[\r\n\0]/.test(raw)) return "header contains CR, LF or NUL (header injection)";
  const colon = raw.indexOf(":");
  if (colon <= 0) return `header ${JSON.stringify(raw)} is not name:value`;
  const name = raw.slice(0, colon).trim();
  const value = raw.slice(colon + 1).trim();
  if (!TOKEN.test(name)) return `header name ${JSON.stringify(name)} is not a token`;
  if (RESERVED_HEADERS.has(name.toLowerCase())) return `header ${name} is set by the agent itself`;
  if (!/^[\x20-\x7e]{0,512}$/.test(value))
    return `header ${name}: value must be printable ASCII, ≤ 512 chars`;
  return { name: name.toLowerCase(), value };
}

export const TelemsupSchema = lazySchema(() =>
  z.strictObject({
    // TS5: the seed's form is one string; a list of them is accepted too.
    additionalHeaders: z.pipe(
      z._default(
        z.union([
          z.string().check(z.maxLength(2048)),
          z.array(z.string().check(z.maxLength(1024))).check(z.maxLength(16)),
        ]),
        [],
      ),
      z.transform((h, ctx) => {
        const raw = typeof h === "string" ? (h.trim() === "" ? [] : [h]) : h;
        const out: Header[] = [];
        for (const r of raw) {
          const p = parseHeader(r);
          if (typeof p === "string") {
            ctx.issues.push({ code: "custom", message: `TS5: ${p}`, input: h });
            return z.NEVER;
          }
          out.push(p);
        }
        return out;
      }),
    ),
    port: z
      .int("TS3: port must be an integer")
      .check(z.gte(0, "TS3: port must be 0..65535"), z.lte(65535, "TS3: port must be 0..65535")),
    resourceRoot: z.string().check(
      z.maxLength(512),
      z.refine(
        (p) =>
          p === "" ||
          p
            .replace(/^\/+/, "")
            .split("/")
            .every((s) => SEGMENT.test(s) && s !== ".." && s !== "."),
        "TS6: resourceRoot must be a path of [A-Za-z0-9._~-] segments (no '..', '//', '?', '#')",
      ),
    ),
    server: z
      .string()
      .check(
        z.refine((s) => HOSTNAME.test(s) && !/^[0-9.]+$/.test(s), "TS2: server must be a DNS host name"),
      ),
    verb: z.enum(["PUT", "POST"], { message: "TS1: verb must be PUT or POST" }),
    interval: z
      .int("TS4: interval must be whole seconds")
      .check(
        z.gte(MIN_INTERVAL_SECONDS, `TS4: interval must be at least ${MIN_INTERVAL_SECONDS} s`),
        z.lte(MAX_INTERVAL_SECONDS, `TS4: interval must be at most ${MAX_INTERVAL_SECONDS} s`),
      ),
  }),
);

export type TelemsupDocument = z.infer<typeof TelemsupSchema>;

/** Parses and checks a TELEMSUP document; the error string names the field and rule. */
export function checkTelemsup(
  text: string,
): { ok: true; doc: TelemsupDocument } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { ok: false, reason: `not valid JSON: ${(e as Error).message}` };
  }
  const r = TelemsupSchema.safeParse(json);
  if (r.success) return { ok: true, doc: r.data };
  const i = r.error.issues[0]!;
  const where = i.path.join(".") || "(root)";
  const msg = i.code === "unrecognized_keys" ? `TS7: ${i.message}` : i.message;
  return { ok: false, reason: `${where}: ${msg}` };
}

export interface UploadTarget {
  url: string;
  method: "PUT" | "POST";
  headers: Record<string, string>;
  intervalSeconds: number;
}

/**
 * TS8: where a document may send, given the config's pinned servers; the
 * reason it may not otherwise. Pure: the supervisor calls it with its config.
 */
export function resolveTarget(
  doc: TelemsupDocument,
  allowed: readonly AllowedServer[],
  agentId: string,
): { ok: true; target: UploadTarget } | { ok: false; reason: string } {
  const host = doc.server.toLowerCase();
  const pin = allowed.find(
    (a) => a.host === host && (a.port === undefined || doc.port === 0 || a.port === doc.port),
  );
  if (!pin) {
    return {
      ok: false,
      reason: `TS8: server ${doc.server}${doc.port ? `:${doc.port}` : ""} is not in telemetry.allowedServers (${allowed.map((a) => `${a.scheme}://${a.host}${a.port ? `:${a.port}` : ""}`).join(", ") || "empty"})`,
    };
  }
  const port = doc.port || pin.port;
  const root = doc.resourceRoot.replace(/^\/+|\/+$/g, "");
  const url = `${pin.scheme}://${host}${port ? `:${port}` : ""}/${root ? `${root}/` : ""}${encodeURIComponent(agentId)}`;
  return {
    ok: true,
    target: {
      url,
      method: doc.verb,
      headers: Object.fromEntries(doc.additionalHeaders.map((h) => [h.name, h.value])),
      intervalSeconds: doc.interval,
    },
  };
}
