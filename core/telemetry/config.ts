/**
 * The `telemetry` section of the agent config. Telemetry is off unless an
 * administrator turns it on (like Live Protection), and it only ever goes
 * to a server pinned here: TELEMSUP content chooses among these servers and
 * sets the cadence, it can never name a host of its own (docs/telemetry.md).
 */
import { z } from "zod";
import { lazySchema } from "../schema/lazy-schema.ts";

const HOST = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*";

/** `host`, `https://host[:port]` or `http://host[:port]` (plain http must be spelled out). */
export const AllowedServerSchema = lazySchema(() =>
  z
    .string()
    .max(300)
    .regex(
      new RegExp(`^((https?)://)?${HOST}(:[0-9]{1,5})?$`, "i"),
      "a host name, or https://host[:port] / http://host[:port]",
    ),
);

export const TelemetryConfigSchema = lazySchema(() =>
  z
    .object({
      enabled: z.boolean().default(false),
      /** The only servers a TELEMSUP document may send to. Empty: nowhere. */
      allowedServers: z.array(AllowedServerSchema).max(32).default([]),
      /** File holding a bearer token for the receiver (the fleet token is used when unset). */
      tokenFile: z.string().min(1).optional(),
      /** ± fraction of the interval added at random, so a fleet does not report in lock-step. */
      jitter: z.number().min(0).max(0.5).default(0.1),
      /** Reports kept on disk while the receiver is unreachable; the oldest are dropped above this. */
      queueMaxBytes: z
        .number()
        .int()
        .min(64 * 1024)
        .max(1024 * 1024 * 1024)
        .default(16 * 1024 * 1024),
      maxBackoffSeconds: z.number().positive().max(86400).default(3600),
      timeoutSeconds: z.number().positive().max(600).default(30),
    })
    .strict()
    .prefault({}),
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
