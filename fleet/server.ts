/**
 * `contentctl serve --release CONFIG`: the repository's static files plus
 * the fleet endpoint and the release console on the same listener, and the
 * release scheduler ticking in the background.
 *
 *   POST /fleet/heartbeat        agent heartbeats (signed by an enrolled agent key, ≤ 16 KiB, zod-validated;
 *                                the tenant bearer token only in the compatibility mode); answered
 *                                200 {"want":["exclusions"]} when the fleet lacks the agent's current
 *                                exclusion list (fleet/exclusions), else 204
 *   POST /fleet/exclusions, GET /console/exclusions[.json]   exclusion reports (fleet/exclusions/routes.ts)
 *   POST /fleet/enroll           agent enrollment (fleet/identity/routes.ts)
 *   PUT|POST /telemetry/…        telemetry reports (tenant bearer token, fleet/telemetry/routes.ts)
 *   GET  /console/telemetry[.json]  fleet-wide rule runtimes (fleet/telemetry), operator login required
 *   GET  /console                release console (HTML, inline SVG, strict CSP), operator login required
 *   GET  /console/login          sign-in form (fleet/identity/console-routes.ts)
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
import { describeError } from "../core/errors.ts";
import { EXCLUSIONS_PATH } from "../core/exclusions/report.ts";
import { log } from "../core/log.ts";
import { repoRequestHandler } from "../core/repo/serve.ts";
import { type ReleaseAlerter, webhookAlerter } from "./alerts.ts";
import type { ReleaseConfig } from "./config.ts";
import { consoleCsp, renderConsoleBody, renderConsolePage } from "./console.ts";
import type { FleetStore } from "./db/fleet-store.ts";
import { ReleaseEngine, type TickResult } from "./engine.ts";
import { exclusionsApp } from "./exclusions/routes.ts";
import { ExclusionStore } from "./exclusions/store.ts";
import type { FleetAgent } from "./health.ts";
import { readJsonBody } from "./http/body.ts";
import { consoleAuth } from "./identity/console-routes.ts";
import { DbIdentityStore } from "./identity/db-store.ts";
import { IdentityEdge, type SenderFacts } from "./identity/routes.ts";
import type { IdentityStore } from "./identity/store.ts";
import { openReleaseDb } from "./open-db.ts";
import { telemetryReceiver } from "./telemetry/receiver.ts";

const logger = log.child({ component: "release-server" });

export interface FleetAppDeps {
  engine: ReleaseEngine;
  fleet: FleetStore;
  config: ReleaseConfig;
  now: () => Date;
  /** Exclusion summaries from heartbeats go here; it says when to ask for the full list. */
  exclusions?: ExclusionStore;
  /** Called when a heartbeat reports trouble, so the scheduler can react before its next tick. */
  onTrouble?: () => void;
  consoleRefreshMs?: number;
  /** Enrollment and signed heartbeats (fleet/identity). */
  identity: IdentityEdge;
  /** Enrollments and the audit trail, for the console. */
  store: IdentityStore;
  /** More console sections (GET only), served behind the same operator login: e.g. telemetry's views. */
  consoleSections?: ConsoleSection[];
}

/** A console section another folder serves: its GET paths under /console/ and the app that answers them. */
export interface ConsoleSection {
  /** Under /console/ by type: a path outside it would skip the login gate. */
  paths: readonly `/console/${string}`[];
  app: Hono;
}

export function fleetApp(deps: FleetAppDeps): Hono {
  const app = new Hono();
  const { identity } = deps;
  identity.routes(app);
  // Operator login in front of every /console route (fleet/identity/console-routes.ts).
  const consoleExtra = consoleAuth(app, deps);
  // The exclusions section is behind the same operator login (what endpoints exclude is for operators).
  if (deps.exclusions) {
    const section = exclusionsApp({
      store: deps.exclusions,
      tenants: deps.config.fleet.tenants,
      now: deps.now,
    });
    for (const path of ["/console/exclusions", "/console/exclusions.json"])
      app.get(path, (c) => section.fetch(c.req.raw));
  }
  for (const section of deps.consoleSections ?? []) {
    for (const path of section.paths) {
      // Registered after the gate (consoleAuth above), so the login runs first.
      app.get(path, (c) => section.app.fetch(c.req.raw));
    }
  }

  app.post(HEARTBEAT_PATH, async (c) => {
    // I1: a signed heartbeat is checked against its enrolled key below; an unsigned one only in the
    // compatibility mode, on the tenant token.
    const signed = identity.isSigned(c.req.raw.headers);
    const tenant = signed ? undefined : identity.tenantOf(c.req.header("authorization"));
    if (!signed && !deps.config.fleet.identity.allowUnenrolled) {
      return c.json(
        {
          error: "I1: heartbeats must be signed by an enrolled agent key (agent enroll)",
          code: "FLEET_NOT_ENROLLED",
        },
        401,
      );
    }
    if (!signed && !tenant) {
      return c.json({ error: "unauthorized", code: "FLEET_UNAUTHORIZED" }, 401, {
        "WWW-Authenticate": 'Bearer realm="outpost-fleet"',
      });
    }
    const read = await readJsonBody(c, HeartbeatSchema, MAX_HEARTBEAT_BYTES, "heartbeat");
    if (!read.ok) return read.response;
    const body = read.body;
    let hb = read.data;
    let sender: SenderFacts;
    if (signed) {
      const v = await identity.verifyHeartbeat(c.req.raw.headers, body, hb);
      if (!v.ok) return c.json({ error: v.error, code: v.code }, v.status);
      ({ hb, sender } = v.value);
    } else {
      if (hb.tenant !== tenant) {
        return c.json({ error: "token does not belong to this tenant", code: "FLEET_WRONG_TENANT" }, 403);
      }
      sender = { enrolled: false, vendor: deps.config.fleet.tenants[hb.tenant]?.vendor ?? false };
    }
    const before = await deps.fleet.get(hb.tenant, hb.agentId);
    if (!(await deps.fleet.ingest(hb, deps.now().getTime(), sender))) {
      return c.json({ error: "fleet registry full", code: "FLEET_FULL" }, 503, { "Retry-After": "3600" });
    }
    if (reportsTrouble(hb, before)) deps.onTrouble?.();
    if (
      hb.exclusions &&
      (await deps.exclusions?.noteSummary(hb.tenant, hb.agentId, hb.exclusions, deps.now()))
    ) {
      return c.json({ want: ["exclusions"] }, 200);
    }
    return c.body(null, 204);
  });

  app.get("/console/status.json", async (c) => c.json(await deps.engine.status()));

  app.get("/console", async (c) => {
    const view = await deps.engine.status();
    const extra = await consoleExtra.section(c);
    const headers = { "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" };
    if (c.req.query("fragment") === "1") return c.html(renderConsoleBody(view, extra), 200, headers);
    const nonce = randomBytes(16).toString("base64");
    const refresh = Number(c.req.query("refresh"));
    const refreshMs = Number.isFinite(refresh) && refresh >= 50 ? refresh : (deps.consoleRefreshMs ?? 10_000);
    return c.html(renderConsolePage(view, { nonce, refreshMs, extra }), 200, {
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

/** The paths the fleet app answers (everything else is the repository, or an upload receiver). */
export function isFleetAppPath(path: string): boolean {
  return path.startsWith("/fleet/") || path === "/console" || path.startsWith("/console/");
}

/**
 * Red, crashing, rolled back within the last hour (older rollbacks stay
 * listed but are news no more), or a version newly marked bad — a rejection
 * at validation is as much a verdict on the release as a crash.
 */
function reportsTrouble(hb: Heartbeat, before?: FleetAgent): boolean {
  const recent = Date.parse(hb.sentAt) - 3600_000;
  return (
    hb.health === "red" ||
    hb.content.some(
      (c) =>
        c.crashes > 0 ||
        // Newly marked bad since this agent's previous heartbeat (a first heartbeat cannot tell news from history).
        (before !== undefined && c.badVersions.some((v) => !before.content[c.type]?.bad.includes(v))) ||
        c.handlerState === "failed" ||
        c.handlerState === "crash-looping" ||
        c.rollbacks.some((r) => Date.parse(r.at) >= recent),
    )
  );
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
  /** Enrollments, sequence numbers and the audit trail; default: the fleet database (fleet/identity/db-store.ts). */
  identityStore?: IdentityStore;
  /** Replaces the default reaction to a troubled heartbeat (a tick 250 ms later); simulations count steps. */
  onTrouble?: () => void;
}

export interface ReleaseServer {
  readonly url: URL;
  readonly port: number;
  readonly fleet: FleetStore & { received: number };
  readonly engine: ReleaseEngine;
  readonly identity: IdentityEdge;
  /** The fleet app's routes (method, path), so a test can walk every console route (fleet/server.test.ts). */
  readonly routes: readonly { method: string; path: string }[];
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
  // Enrollments, sequence numbers and the audit trail in the same database, shared by every replica.
  const store: IdentityStore =
    opts.identityStore ?? (await DbIdentityStore.open(db.driver, config.paths.stateDir));
  const engine = new ReleaseEngine({ config, now, db, alerter, audit: store });
  const identity = new IdentityEdge({ config, store, now });
  let ticking: Promise<TickResult> | undefined;
  const tick = async (): Promise<TickResult> => {
    if (ticking) return ticking;
    // Another replica ticking right now is not an error: skip, it has the planner.
    ticking = (async () => {
      try {
        return await engine.tick({ waitMs: 0 });
      } finally {
        await store.flush();
      }
    })();
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
  // In the fleet database: every replica on it asks an agent for its list once and shows the same lists.
  const exclusionStore = new ExclusionStore(db.driver);
  // Telemetry too: every replica's console and the ML live gate see every report, stored once.
  const telemetry = telemetryReceiver(db.driver, config.fleet.tenants, now);
  const app = fleetApp({
    engine,
    fleet,
    config,
    now,
    exclusions: exclusionStore,
    identity,
    store,
    consoleRefreshMs: opts.consoleRefreshMs,
    consoleSections: [telemetry.console],
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
  const exclusionsRx = exclusionsApp({ store: exclusionStore, tenants: config.fleet.tenants, now });
  const server = Bun.serve({
    port: opts.port,
    hostname: opts.hostname ?? "127.0.0.1",
    fetch: (req, srv) => {
      const path = new URL(req.url).pathname;
      // Agents' uploads (telemetry up to 1 MiB, exclusions up to 32 MiB) go straight to their receivers,
      // which check the tenant token; every /console path goes through the fleet app and its operator login.
      if (telemetry.handles(path)) return telemetry.fetch(req);
      if (path === EXCLUSIONS_PATH) return exclusionsRx.fetch(req);
      return isFleetAppPath(path) ? app.fetch(req, { peer: srv.requestIP(req)?.address }) : repo(req);
    },
  });
  const timer = autoTick ? setInterval(safeTick, config.tickSeconds * 1000) : undefined;
  (timer as { unref?: () => void } | undefined)?.unref?.();
  return {
    url: server.url,
    port: server.port ?? opts.port,
    fleet,
    engine,
    identity,
    routes: app.routes.map((r) => ({ method: r.method, path: r.path })),
    tick,
    async stop() {
      if (timer) clearInterval(timer);
      if (soon) clearTimeout(soon);
      await ticking?.catch(() => {});
      await server.stop(true);
      await store.flush();
      await alerter.flush();
      await db.close();
    },
  };
}
