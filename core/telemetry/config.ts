/**
 * The `telemetry` section of the agent config. Telemetry is off unless an
 * administrator turns it on (like Live Protection), and it only ever goes
 * to a server pinned here: TELEMSUP content chooses among these servers and
 * sets the cadence, it can never name a host of its own (docs/telemetry.md).
 */

import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";

const HOST = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*";

/** `host`, `https://host[:port]` or `http://host[:port]` (plain http must be spelled out). */
export const AllowedServerSchema = lazySchema(() =>
  z
    .string()
    .check(
      z.maxLength(300),
      z.regex(
        new RegExp(`^((https?)://)?${HOST}(:[0-9]{1,5})?$`, "i"),
        "a host name, or https://host[:port] / http://host[:port]",
      ),
    ),
);

export const TelemetryConfigSchema = lazySchema(() =>
  z.prefault(
    z.strictObject({
      enabled: z._default(z.boolean(), false),
      /** The only servers a TELEMSUP document may send to. Empty: nowhere. */
      allowedServers: z._default(z.array(AllowedServerSchema).check(z.maxLength(32)), []),
      /** File holding a bearer token for the receiver (the fleet token is used when unset). */
      tokenFile: z.optional(z.string().check(z.minLength(1))),
      /** ± fraction of the interval added at random, so a fleet does not report in lock-step. */
      jitter: z._default(z.number().check(z.gte(0), z.lte(0.5)), 0.1),
      /** Reports kept on disk while the receiver is unreachable; the oldest are dropped above this. */
      queueMaxBytes: z._default(z.int().check(z.gte(64 * 1024), z.lte(1024 * 1024 * 1024)), 16 * 1024 * 1024),
      maxBackoffSeconds: z._default(z.number().check(z.positive(), z.lte(86400)), 3600),
      timeoutSeconds: z._default(z.number().check(z.positive(), z.lte(600)), 30),
    }),
    {},
  ),
);

export type TelemetryConfig = z.infer<typeof TelemetryConfigSchema>;

export interface AllowedServer {
  scheme: "https" | "http";
  host: string;
  /** Undefined: any port the document names (0 = the scheme's default). */
  port?: number;
}

export function parseAllowedServer(entry: string): AllowedServer {
  const m = /^(?:(https?):\/\/)?([^:/]+)(?::(\d+))?$/i.exec(entry);
  if (!m) throw new Error(`bad allowed server ${entry}`);
  return {
    scheme: (m[1]?.toLowerCase() as "https" | "http" | undefined) ?? "https",
    host: m[2]!.toLowerCase(),
    ...(m[3] ? { port: Number(m[3]) } : {}),
  };
}
