/**
 * `contentctl serve --release CONFIG`: the repository's static files plus
 * the fleet endpoint and the release console on the same listener, and the
 * release scheduler ticking in the background.
 *
 *   POST /fleet/heartbeat        agent heartbeats (per-tenant bearer token, ≤ 16 KiB, zod-validated)
 *   GET  /console                release console (HTML, inline SVG, strict CSP)
 *   GET  /console/status.json    the same view as `contentctl release status --json`
 *   everything else              the repository folder, exactly as `contentctl serve` without --release
 *
 * The console is read-only: promotion and abort stay on the CLI, behind
 * whoever may run contentctl.
 *
 * Stateless: heartbeats, release state and the planner lock live in the
 * database (`db`: PostgreSQL URL, or STATE/fleet.db), so N replicas behind
 * one load balancer serve the same fleet, and whichever holds the planner
 * lock runs the tick; the others skip theirs.
 */
import { randomBytes } from "node:crypto";
import { Hono } from "hono";
import {
  HEARTBEAT_PATH,
  type Heartbeat,
  HeartbeatSchema,
  MAX_HEARTBEAT_BYTES,
} from "../core/agent/heartbeat-protocol.ts";
import { sha256Hex } from "../core/crypto/digest.ts";
import { describeError } from "../core/errors.ts";
import { log } from "../core/log.ts";
import { repoRequestHandler } from "../core/repo/serve.ts";
import { type ReleaseAlerter, webhookAlerter } from "./alerts.ts";
import type { ReleaseConfig } from "./config.ts";
import { consoleCsp, renderConsoleBody, renderConsolePage } from "./console.ts";
import type { FleetStore } from "./db/fleet-store.ts";
import { ReleaseEngine, type TickResult } from "./engine.ts";
import { openReleaseDb } from "./open-db.ts";
import { telemetryReceiver } from "./telemetry/receiver.ts";

const logger = log.child({ component: "release-server" });

export interface FleetAppDeps {
  engine: ReleaseEngine;
  fleet: FleetStore;
  config: ReleaseConfig;
  now: () => Date;
  /** Called when a heartbeat reports trouble, so the scheduler can react before its next tick. */
  onTrouble?: () => void;
  consoleRefreshMs?: number;
}

export function fleetApp(deps: FleetAppDeps): Hono {
  const tenantsByHash = new Map(
    Object.entries(deps.config.fleet.tenants).map(([t, v]) => [v.tokenSha256, t]),
  );
  const app = new Hono();

  app.post(HEARTBEAT_PATH, async (c) => {
    const auth = c.req.header("authorization") ?? "";
    const token = /^Bearer ([\x21-\x7e]{16,256})$/.exec(auth)?.[1];
    // Looking the token up by its hash leaks nothing a timing probe could use.
    const tenant = token ? tenantsByHash.get(sha256Hex(new TextEncoder().encode(token))) : undefined;
    if (!tenant) {
      return c.json({ error: "unauthorized", code: "FLEET_UNAUTHORIZED" }, 401, {
        "WWW-Authenticate": 'Bearer realm="outpost-fleet"',
      });
    }
    if (!(c.req.header("content-type") ?? "").toLowerCase().startsWith("application/json")) {
      return c.json({ error: "content-type must be application/json", code: "FLEET_MEDIA_TYPE" }, 415);
    }
    const body = await readCapped(c.req.raw, MAX_HEARTBEAT_BYTES);
    if (body === null) {
      return c.json(
        { error: `heartbeat larger than ${MAX_HEARTBEAT_BYTES} bytes`, code: "FLEET_TOO_LARGE" },
        413,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
    } catch {
      return c.json({ error: "not UTF-8 JSON", code: "FLEET_INVALID" }, 400);
    }
    const parsed = HeartbeatSchema.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues
        .slice(0, 5)
        .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
      return c.json({ error: `invalid heartbeat: ${issues.join("; ")}`, code: "FLEET_INVALID" }, 400);
    }
    const hb = parsed.data;
    if (hb.tenant !== tenant) {
      return c.json({ error: "token does not belong to this tenant", code: "FLEET_WRONG_TENANT" }, 403);
    }
    if (!(await deps.fleet.ingest(hb, deps.now().getTime()))) {
      return c.json({ error: "fleet registry full", code: "FLEET_FULL" }, 503, { "Retry-After": "3600" });
    }
    if (reportsTrouble(hb)) deps.onTrouble?.();
    return c.body(null, 204);
  });

  app.get("/console/status.json", async (c) => c.json(await deps.engine.status()));

  app.get("/console", async (c) => {
    const view = await deps.engine.status();
    const headers = { "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" };
    if (c.req.query("fragment") === "1") return c.html(renderConsoleBody(view), 200, headers);
    const nonce = randomBytes(16).toString("base64");
    const refresh = Number(c.req.query("refresh"));
    const refreshMs = Number.isFinite(refresh) && refresh >= 50 ? refresh : (deps.consoleRefreshMs ?? 10_000);
    return c.html(renderConsolePage(view, { nonce, refreshMs }), 200, {
      ...headers,
      "Content-Security-Policy": consoleCsp(nonce),
    });
  });

  app.onError((e, c) => {
    logger.error("request failed", { path: c.req.path, ...describeError(e) });
    return c.json({ error: "internal error", code: "INTERNAL" }, 500);
  });
  return app;
}

/** Red, crashing, or rolled back within the last hour (older rollbacks stay listed but are news no more). */
function reportsTrouble(hb: Heartbeat): boolean {
  const recent = Date.parse(hb.sentAt) - 3600_000;
  return (
    hb.health === "red" ||
    hb.content.some(
      (c) =>
        c.crashes > 0 ||
        c.handlerState === "failed" ||
        c.handlerState === "crash-looping" ||
        c.rollbacks.some((r) => Date.parse(r.at) >= recent),
    )
  );
}

/** The body, or null when it is larger than `max` (whatever Content-Length claims). */
async function readCapped(req: Request, max: number): Promise<Uint8Array | null> {
  const declared = Number(req.headers.get("content-length") ?? Number.NaN);
  if (Number.isFinite(declared) && declared > max) return null;
  const reader = req.body?.getReader();
  if (!reader) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

export interface ReleaseServerOptions {
  config: ReleaseConfig;
  /** Fleet database: postgres://… or sqlite:PATH; default STATE/fleet.db. */
  db?: string;
  port: number;
  hostname?: string;
  now?: () => Date;
  /** Run the scheduler every config.tickSeconds (default true); tests call `tick()` themselves. */
  autoTick?: boolean;
  alerter?: ReleaseAlerter;
  consoleRefreshMs?: number;
  /** Replaces the default reaction to a troubled heartbeat (a tick 250 ms later); simulations count steps. */
  onTrouble?: () => void;
}

export interface ReleaseServer {
  readonly url: URL;
  readonly port: number;
  readonly fleet: FleetStore & { received: number };
  readonly engine: ReleaseEngine;
  /** One scheduler run, if no other replica is running one (then `skipped` says so); what the timer does. */
  tick(): Promise<TickResult>;
  stop(): Promise<void>;
}

export async function serveRelease(opts: ReleaseServerOptions): Promise<ReleaseServer> {
  const { config } = opts;
  const now = opts.now ?? (() => new Date());
  const db = await openReleaseDb({
    url: opts.db,
    stateDir: config.paths.stateDir,
    maxAgents: config.fleet.maxAgents,
  });
  const fleet = db.fleet;
  const alerter =
    opts.alerter ?? webhookAlerter(config.alerts.urls, { timeoutMs: config.alerts.timeoutSeconds * 1000 });
  const engine = new ReleaseEngine({ config, now, db, alerter });
  let ticking: Promise<TickResult> | undefined;
  const tick = async (): Promise<TickResult> => {
    if (ticking) return ticking;
    // Another replica ticking right now is not an error: skip, it has the planner.
    ticking = engine.tick({ waitMs: 0 });
    try {
      return await ticking;
    } finally {
      ticking = undefined;
    }
  };
  const autoTick = opts.autoTick ?? true;
  const safeTick = () => {
    tick().catch((e) => logger.error("release tick failed", describeError(e)));
  };
  let soon: ReturnType<typeof setTimeout> | undefined;
  const app = fleetApp({
    engine,
    fleet,
    config,
    now,
    consoleRefreshMs: opts.consoleRefreshMs,
    // Trouble is judged at once (coalesced), not up to a tick later: this is the abort latency.
    onTrouble:
      opts.onTrouble ??
      (autoTick
        ? () => {
            soon ??= setTimeout(() => {
              soon = undefined;
              safeTick();
            }, 250);
          }
        : undefined),
  });
  const repo = repoRequestHandler(config.paths.repo);
  const telemetry = telemetryReceiver(config.paths.stateDir, config.fleet.tenants, now);
  const server = Bun.serve({
    port: opts.port,
    hostname: opts.hostname ?? "127.0.0.1",
    fetch: (req) => {
      const path = new URL(req.url).pathname;
      if (telemetry.handles(path)) return telemetry.fetch(req);
      return path.startsWith("/fleet/") || path === "/console" || path.startsWith("/console/")
        ? app.fetch(req)
        : repo(req);
    },
  });
  const timer = autoTick ? setInterval(safeTick, config.tickSeconds * 1000) : undefined;
  (timer as { unref?: () => void } | undefined)?.unref?.();
  return {
    url: server.url,
    port: server.port ?? opts.port,
    fleet,
    engine,
    tick,
    async stop() {
      if (timer) clearInterval(timer);
      if (soon) clearTimeout(soon);
      await ticking?.catch(() => {});
      await server.stop(true);
      telemetry.close();
      await alerter.flush();
      await db.close();
    },
  };
}
