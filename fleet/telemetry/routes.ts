/**
 * The fleet service's telemetry receiver and console view, hooked into
 * `contentctl serve --release` (fleet/server.ts):
 *
 *   PUT|POST /telemetry/…           one gzipped body of JSON lines (one report per line), with
 *                                   `Idempotency-Key: <generation>:<first>-<last>`; the tenant's
 *                                   fleet bearer token. Each report is stored once under
 *                                   `<generation>:<seq>` however often it is retried, and
 *                                   whichever replica on the fleet database receives it.
 *   GET /console/telemetry          fleet-wide rule runtime percentiles and the slowest rules
 *   GET /console/telemetry.json     the same view as JSON
 *
 * The two halves are separate apps: uploads (`telemetryApp`) carry the
 * tenant token and are routed straight to it; the views
 * (`telemetryConsoleApp`) are mounted inside the fleet app behind the
 * operator login (docs/rollout.md "Console login") like every console page.
 *
 * Bodies are capped before and after decompression, validated with the
 * report schema (core/telemetry/report-schema.ts), and refused with a code.
 */
import { gunzipSync } from "node:zlib";
import { Hono } from "hono";
import { sha256Hex } from "../../core/crypto/digest.ts";
import { describeError } from "../../core/errors.ts";
import { log } from "../../core/log.ts";
import { ReportSchema } from "../../core/telemetry/report-schema.ts";
import { renderTelemetryPage, telemetryCsp } from "./page.ts";
import type { TelemetryStore } from "./store.ts";

export const TELEMETRY_PREFIX = "/telemetry/";
export const MAX_BODY_BYTES = 1024 * 1024;
export const MAX_DECODED_BYTES = 8 * 1024 * 1024;

const logger = log.child({ component: "telemetry-receiver" });

export interface ReceiverDeps {
  store: TelemetryStore;
  /** Tenant → sha256 hex of its bearer token (the release config's fleet tenants). */
  tenants: Record<string, { tokenSha256: string }>;
  now?: () => Date;
}

const fail = (code: string, error: string) => ({ error, code });

export function telemetryApp(deps: ReceiverDeps): Hono {
  const now = deps.now ?? (() => new Date());
  const byHash = new Map(Object.entries(deps.tenants).map(([t, v]) => [v.tokenSha256, t]));
  const app = new Hono();

  const receive = async (c: import("hono").Context) => {
    const token = /^Bearer ([\x21-\x7e]{16,256})$/.exec(c.req.header("authorization") ?? "")?.[1];
    const tenant = token ? byHash.get(sha256Hex(new TextEncoder().encode(token))) : undefined;
    if (!tenant) return c.json(fail("TELEM_UNAUTHORIZED", "unauthorized"), 401);
    const key = /^([A-Za-z0-9-]{1,64}):(\d{1,16})-(\d{1,16})$/.exec(c.req.header("idempotency-key") ?? "");
    if (!key)
      return c.json(fail("TELEM_NO_KEY", "Idempotency-Key <generation>:<first>-<last> required"), 400);
    const ctype = (c.req.header("content-type") ?? "").toLowerCase();
    if (!ctype.startsWith("application/json") && !ctype.startsWith("application/x-ndjson"))
      return c.json(fail("TELEM_MEDIA_TYPE", "content-type must be application/json"), 415);
    const raw = new Uint8Array(await c.req.arrayBuffer());
    if (raw.byteLength > MAX_BODY_BYTES)
      return c.json(fail("TELEM_TOO_LARGE", `body over ${MAX_BODY_BYTES} bytes`), 413);
    let text: string;
    try {
      const gz = (c.req.header("content-encoding") ?? "").toLowerCase() === "gzip";
      const bytes = gz ? gunzipSync(raw, { maxOutputLength: MAX_DECODED_BYTES }) : raw;
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch (e) {
      return c.json(fail("TELEM_INVALID", `body not decodable: ${(e as Error).message}`), 400);
    }
    const lines = text.split("\n").filter((l) => l.trim() !== "");
    const first = Number(key[2]);
    if (lines.length !== Number(key[3]) - first + 1)
      return c.json(fail("TELEM_INVALID", "Idempotency-Key range does not match the number of reports"), 400);
    const reports = [];
    for (const [i, line] of lines.entries()) {
      let json: unknown;
      try {
        json = JSON.parse(line);
      } catch {
        return c.json(fail("TELEM_INVALID", `report ${i + 1}: not JSON`), 400);
      }
      const parsed = ReportSchema.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        return c.json(
          fail("TELEM_INVALID", `report ${i + 1}: ${issue.path.join(".") || "(root)"}: ${issue.message}`),
          400,
        );
      }
      reports.push(parsed.data);
    }
    let stored = 0;
    const at = now();
    for (const [i, r] of reports.entries())
      if (await deps.store.insert(`${key[1]}:${first + i}`, tenant, r, at)) stored++;
    return c.json({ stored, duplicates: reports.length - stored }, stored > 0 ? 201 : 200);
  };
  app.post(`${TELEMETRY_PREFIX}*`, receive);
  app.put(`${TELEMETRY_PREFIX}*`, receive);

  app.onError((e, c) => {
    logger.error("telemetry request failed", { path: c.req.path, ...describeError(e) });
    return c.json(fail("INTERNAL", "internal error"), 500);
  });
  return app;
}

/** The console views; the caller puts them behind the operator login (they show the fleet's rules). */
export function telemetryConsoleApp(store: TelemetryStore): Hono {
  const app = new Hono();
  app.get("/console/telemetry.json", async (c) => c.json(await store.view()));
  app.get("/console/telemetry", async (c) => {
    const nonce = crypto.randomUUID().replaceAll("-", "");
    return c.html(renderTelemetryPage(await store.view(), nonce), 200, {
      "Cache-Control": "no-store",
      "X-Content-Type-Options": "nosniff",
      "Content-Security-Policy": telemetryCsp(nonce),
    });
  });
  return app;
}

/** Paths of the console views, for the fleet app to mount behind its login. */
export const TELEMETRY_CONSOLE_PATHS = ["/console/telemetry", "/console/telemetry.json"] as const;

/** Whether the release server should hand this path to the upload app (uploads only: never a console view). */
export function isTelemetryUploadPath(path: string): boolean {
  return path.startsWith(TELEMETRY_PREFIX);
}
