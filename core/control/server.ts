/**
 * The agent's local control plane: an OpenApiHono app over the AgentApi
 * façade, served on loopback TCP and (where the platform allows) a unix
 * socket. Every route but health needs the bearer token that only the
 * agent's user can read from the state directory; every failure goes
 * through the single error mapping (`errorResponse`); every route is
 * described by zod schemas, from which `GET /v1/openapi.json` is generated.
 *
 * Every request first passes `gate` (metrics, `admission`: Host header and
 * token, body limit), then the route's own zod validation. The one
 * exception to "everything goes through Hono" is the status fast path,
 * which answers only what the Hono route would answer the same way.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, rmSync } from "node:fs";
import type { Server } from "bun";
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { AgentApi } from "../agent/api.ts";
import { statePaths } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { atomicWriteJson } from "../fsutil.ts";
import { isIPv4 } from "../ip-address.ts";
import { log } from "../log.ts";
import { z } from "../schema/zod.ts";
import { VERSION } from "../version.ts";
import { tokenChecker, unauthorized } from "./auth.ts";
import { ControlError, codeForHttpStatus, errorBody, httpStatusFor } from "./errors.ts";
import type { ControlContext, ControlEvents, RouteExtension } from "./extensions.ts";
import { countRequest, recordRequest } from "./http-metrics.ts";
import { openApiDocumentOf } from "./openapi-document.ts";
import { defineRoute, OpenApiHono, openApiPath } from "./openapi-route.ts";
import { guardEdge, guardRoutes } from "./peer-guard.ts";
import { agentRoutes } from "./routes/agent.ts";
import { contentRoutes } from "./routes/content.ts";
import { type EventStreamOptions, EventStreams, eventRoutes } from "./routes/events.ts";
import { handlerRoutes } from "./routes/handlers.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { COMMON_ERRORS, errorResponses } from "./schemas.ts";
import { StatusCache } from "./status-cache.ts";
import { writeControlToken } from "./token-file.ts";

export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;

export interface ControlAppOptions {
  token: string;
  bodyLimitBytes?: number;
  extensions?: RouteExtension[];
  events?: ControlEvents;
  /** Accept any Host header (only with a non-loopback bind, see control.allowRemote). */
  allowRemote?: boolean;
  /** How long a built /v1/status answer may be reused when events invalidate it (default 1000). */
  statusMaxAgeMs?: number;
  eventStreams?: EventStreamOptions;
}

type BunHandler = (req: Request, server: Server<undefined>) => Response | Promise<Response>;

/** The control app and what its owner must close when it stops serving. */
export interface ControlApp {
  app: OpenApiHono;
  /** For Bun.serve's `routes`, in front of `app.fetch` (see statusFastPath). */
  nativeRoutes: Record<string, BunHandler>;
  /** Ends open event streams and detaches from the event bus; returns how many streams it ended. */
  close(): number;
}

/** `idleTimeout: 0` for the unix listener, typed loosely because Bun's types omit it there (see below). */
const UNIX_NO_IDLE_LIMIT: object = { idleTimeout: 0 };

const LOOPBACK_HOST = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?$/i;

/** The one mapping from a thrown error to the JSON error response. */
function errorResponse(err: unknown, c: Context): Response {
  if (err instanceof HTTPException) {
    const code = codeForHttpStatus(err.status);
    return c.json({ error: { code, message: err.message || `HTTP ${err.status}` } }, err.status);
  }
  const body = errorBody(err);
  const status = httpStatusFor(body.error.code);
  if (status >= 500)
    log.child({ component: "control" }).error("request failed", { path: c.req.path, ...body.error });
  return c.json(body, status);
}

export interface AdmissionOptions {
  token: string;
  allowRemote: boolean;
}

/**
 * Who may talk to the control plane, as one pure decision shared by the
 * Hono gate and the status fast path, so the two cannot drift apart:
 * - the Host header must be a loopback name unless remote access is
 *   allowed: a DNS-rebinding page reaches 127.0.0.1 through a name it
 *   controls, while a local client always sends a loopback one;
 * - the token, for everything but the liveness probe (exactly GET/HEAD
 *   /v1/health).
 * Returns the refusal, or undefined to admit.
 */
export function admission(
  opts: AdmissionOptions,
): (req: {
  host: string;
  authorization: string | undefined;
  method: string;
  path: string;
}) => ControlError | undefined {
  const tokenOk = tokenChecker(opts.token);
  return ({ host, authorization, method, path }) => {
    if (!opts.allowRemote && !LOOPBACK_HOST.test(host)) {
      return new ControlError(
        "CTL_FORBIDDEN_HOST",
        `Host ${JSON.stringify(host.slice(0, 100))} is not a loopback name; use 127.0.0.1, localhost or [::1]`,
      );
    }
    const probe = (method === "GET" || method === "HEAD") && path === "/v1/health";
    if (!probe && !tokenOk(authorization)) return unauthorized();
    return undefined;
  };
}

/**
 * What every request passes, in one middleware because each layer costs on
 * the hot path: metrics around everything (refusals are counted too), the
 * admission decision, and the body limit for requests that can carry a body.
 */
function gate(opts: AdmissionOptions & { maxSize: number }): MiddlewareHandler {
  const admit = admission(opts);
  const { maxSize } = opts;
  const limit = bodyLimit({
    maxSize,
    onError: () => {
      throw new ControlError("CTL_BODY_TOO_LARGE", `request body exceeds ${maxSize} bytes`);
    },
  });
  return async (c, next) => {
    const started = performance.now();
    try {
      const method = c.req.method;
      const refusal = admit({
        // In-process requests (tests, app.request) carry no Host header; their URL says the same thing.
        host: c.req.header("host") ?? new URL(c.req.url).host,
        authorization: c.req.header("authorization"),
        method,
        path: c.req.path,
      });
      if (refusal) {
        if (refusal.code === "CTL_UNAUTHORIZED") c.header("WWW-Authenticate", 'Bearer realm="outpost-agent"');
        throw refusal;
      }
      if (method === "GET" || method === "HEAD") await next();
      else await limit(c, next);
    } catch (e) {
      // Errors from the routes were mapped further in; these are the gate's own refusals.
      c.res = errorResponse(e, c);
    } finally {
      recordRequest(c, started);
    }
  };
}

const openApiRoute = defineRoute({
  method: "get",
  path: "/v1/openapi.json",
  tags: ["meta"],
  summary: "This document (OpenAPI 3.1)",
  responses: {
    200: { description: "The OpenAPI document", content: { "application/json": { schema: {} } } },
    ...errorResponses(...COMMON_ERRORS),
  },
});

export function buildControlApp(api: AgentApi, opts: ControlAppOptions): ControlApp {
  const maxSize = opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const app = new OpenApiHono();
  app.onError(errorResponse);
  app.notFound((c) => {
    const err = new ControlError("CTL_NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`);
    return c.json(errorBody(err), 404);
  });

  const access: AdmissionOptions = { token: opts.token, allowRemote: opts.allowRemote ?? false };
  // Bun closes a connection that sends nothing for 10 s. An action (update cycle, rollback,
  // handler call) may take longer before its first byte on a busy host — the client then saw
  // ECONNRESET although the action went on. Actions get no idle limit; their own timeouts
  // (update transfer limits, hosts.callTimeoutSeconds) bound them. Reads keep Bun's default.
  // First in the chain: later middleware (the body limit) may replace c.req.raw, and Bun only
  // knows the request object it handed in. An unauthenticated action is refused at once anyway.
  app.use("*", async (c, next) => {
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      (c.env as { timeout?: (req: Request, seconds: number) => void } | undefined)?.timeout?.(c.req.raw, 0);
    }
    await next();
  });
  app.use("*", gate({ ...access, maxSize }));

  const statusCache = new StatusCache(api, { events: opts.events, maxAgeMs: opts.statusMaxAgeMs });
  const streams = new EventStreams(opts.events, opts.eventStreams);
  app.include("/v1", agentRoutes(api, statusCache));
  app.include("/v1/content", contentRoutes(api));
  app.include("/v1/handlers", handlerRoutes(api));
  app.include("/v1/events", eventRoutes(streams));
  app.include("/", metricsRoutes());

  const ctx: ControlContext = { api, ...(opts.events ? { events: opts.events } : {}) };
  for (const ext of opts.extensions ?? []) {
    const v1 = new OpenApiHono();
    ext.mount(v1, ctx);
    documentPlainRoutes(v1, ext.name);
    app.include("/v1", v1);
  }

  let documentText: string | undefined;
  app.openapi(openApiRoute, (c) => {
    // Routes are fixed once the app is built, so the document is generated once.
    documentText ??= JSON.stringify(openApiDocument(app));
    return c.body(documentText, 200, { "content-type": "application/json" }) as never;
  });

  return {
    app,
    nativeRoutes: { "/v1/status": statusFastPath(app, statusCache, access) },
    close() {
      const open = streams.size;
      streams.closeAll();
      statusCache.close();
      return open;
    },
  };
}

const JSON_HEADERS = { "content-type": "application/json" };

/**
 * `GET /v1/status` is what monitoring polls, so Bun routes it natively to
 * this handler, which answers only the common case — admitted request,
 * fresh cached status — with the very bytes the Hono route would send, and
 * counts it under the same metric series. Everything else (a refusal, a
 * stale cache, another method) goes to the Hono app, so errors still come
 * from the one mapping. Skipping Hono's routing, context and middleware
 * chain is most of the control plane's per-request cost
 * (bench/control-plane.ts).
 */
function statusFastPath(app: OpenApiHono, cache: StatusCache, access: AdmissionOptions): BunHandler {
  const admit = admission(access);
  return (req, server) => {
    const started = performance.now();
    if (req.method === "GET") {
      const headers = req.headers;
      const refusal = admit({
        host: headers.get("host") ?? new URL(req.url).host,
        authorization: headers.get("authorization") ?? undefined,
        method: "GET",
        path: "/v1/status",
      });
      const json = refusal ? undefined : cache.fresh();
      if (json !== undefined) {
        const res = new Response(json, { headers: JSON_HEADERS });
        countRequest("/v1/status", "GET", 200, started);
        return res;
      }
    }
    return app.fetch(req, server);
  };
}

/** The app alone, for tests and callers that never stream events. */
export function createControlApp(api: AgentApi, opts: ControlAppOptions): OpenApiHono {
  return buildControlApp(api, opts).app;
}

const SECURITY_SCHEMES = {
  bearerAuth: {
    type: "http",
    scheme: "bearer",
    description: "The token in STATE/control.token (mode 0600, new on every agent start)",
  },
};

export function openApiDocument(app: OpenApiHono) {
  return openApiDocumentOf(
    app.documented,
    {
      openapi: "3.1.0",
      info: {
        title: "Outpost agent control plane",
        version: VERSION,
        description:
          "Local control plane of the Outpost endpoint agent: loopback TCP and the unix socket STATE/control.sock. Every operation but GET /v1/health needs the bearer token from STATE/control.token. Errors are always `{ error: { code, message, file? } }`. See docs/control-plane.md.",
      },
      security: [{ bearerAuth: [] }],
      tags: [
        { name: "agent", description: "Health, status, updates" },
        { name: "content", description: "Installed content and rollback" },
        { name: "handlers", description: "Content handlers' APIs" },
        { name: "events", description: "Server-Sent Events" },
        { name: "metrics", description: "Prometheus" },
        { name: "meta", description: "This document" },
      ],
    },
    SECURITY_SCHEMES,
  );
}

const PLAIN_METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE"]);

/**
 * Routes an extension added with plain `v1.get/post` carry no schema, but
 * the document must still list every route the agent serves: they get an
 * entry that says so, with their path parameters declared.
 */
function documentPlainRoutes(v1: OpenApiHono, extension: string): void {
  const documented = new Set(v1.documented.map((d) => `${d.spec.method.toUpperCase()} ${d.path}`));
  for (const r of v1.routes) {
    if (!PLAIN_METHODS.has(r.method)) continue;
    const path = openApiPath(r.path);
    if (documented.has(`${r.method} ${path}`)) continue;
    documented.add(`${r.method} ${path}`);
    const params = [...path.matchAll(/\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]!);
    v1.documented.push({
      path,
      spec: {
        method: r.method.toLowerCase() as "get",
        path,
        tags: [extension],
        summary: `${r.method} ${path} (from ${extension}; no schema declared)`,
        ...(params.length
          ? { request: { params: z.object(Object.fromEntries(params.map((name) => [name, z.string()]))) } }
          : {}),
        responses: {
          default: {
            description: "Undocumented: the extension registered this route without OpenAPI schemas",
          },
        },
      },
    });
  }
}

/** What `control.json` holds: enough for a local client to find the agent. */
export interface ControlInfo {
  url: string;
  port: number;
  pid: number;
  startedAt: string;
  /** Present when the unix socket is listening; clients prefer it. */
  socket?: string;
}

export interface ControlPlaneOptions {
  api: AgentApi;
  stateDir: string;
  host?: string;
  port?: number;
  allowRemote?: boolean;
  bodyLimitBytes?: number;
  extensions?: RouteExtension[];
  events?: ControlEvents;
  statusMaxAgeMs?: number;
  eventStreams?: EventStreamOptions;
  /**
   * Seconds the TCP listener lets a silent connection live (Bun's default, 10, when omitted).
   * Actions lift it per request; tests shorten it so that lift is proven in a second, not 11.
   */
  idleTimeoutSeconds?: number;
}

export interface ControlPlane {
  url: string;
  port: number;
  token: string;
  socket?: string;
  stop(): Promise<void>;
}

export function isLoopbackHost(host: string): boolean {
  if (host === "localhost" || host === "::1") return true;
  return isIPv4(host) && host.startsWith("127.");
}

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const host = opts.host ?? "127.0.0.1";
  if (!isLoopbackHost(host) && !opts.allowRemote) {
    throw new ConfigError(
      "CFG_REMOTE_CONTROL",
      `control.host ${host} is not a loopback address; set control.allowRemote to expose the control plane`,
    );
  }
  const paths = statePaths(opts.stateDir);
  mkdirSync(paths.root, { recursive: true, mode: 0o700 });

  const token = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");
  // The token lands before control.json: a client that finds control.json can always read a matching token.
  writeControlToken(paths.controlToken, token);

  const control = buildControlApp(opts.api, {
    token,
    bodyLimitBytes: opts.bodyLimitBytes,
    extensions: opts.extensions,
    events: opts.events,
    allowRemote: opts.allowRemote,
    statusMaxAgeMs: opts.statusMaxAgeMs,
    eventStreams: opts.eventStreams,
  });
  const app = control.app;
  let tcp: Server<undefined>;
  try {
    tcp = Bun.serve({
      hostname: host,
      port: opts.port ?? 0,
      routes: guardRoutes(control.nativeRoutes, "tcp"),
      fetch: guardEdge(app.fetch, "tcp"),
      error: internalErrorResponse,
      ...(opts.idleTimeoutSeconds === undefined ? {} : { idleTimeout: opts.idleTimeoutSeconds }),
    });
  } catch (e) {
    control.close();
    rmSync(paths.controlToken, { force: true });
    throw e;
  }
  const unix = listenUnix(paths.controlSocket, control);

  const port = tcp.port ?? 0;
  const url = tcp.url.toString().replace(/\/$/, "");
  const info: ControlInfo = {
    url,
    port,
    pid: process.pid,
    startedAt: new Date().toISOString(),
    ...(unix ? { socket: paths.controlSocket } : {}),
  };
  atomicWriteJson(paths.controlInfo, info, 0o644);
  log.child({ component: "control" }).info("control plane listening", { url, socket: info.socket ?? null });

  let stopped = false;
  return {
    url,
    port,
    token,
    ...(unix ? { socket: paths.controlSocket } : {}),
    async stop() {
      if (stopped) return;
      stopped = true;
      // Withdraw the advertisement first so no new client picks a dying server.
      rmSync(paths.controlInfo, { force: true });
      rmSync(paths.controlToken, { force: true });
      // Event streams never end on their own: end them, and give their last chunk one turn of the
      // event loop to reach the socket, so clients see a clean end rather than a reset.
      if (control.close() > 0) await new Promise((resolve) => setImmediate(resolve));
      await Promise.all([tcp.stop(true), unix?.stop(true)]);
      rmSync(paths.controlSocket, { force: true });
    },
  };
}

/** Bun's last resort (an error no handler mapped) still answers in the one error shape, not an HTML page. */
function internalErrorResponse(e: Error): Response {
  log.child({ component: "control" }).error("unhandled control-plane error", { message: e.message });
  return Response.json(errorBody(e), { status: 500 });
}

/** Unix sockets are an optimisation (no port, file permissions): failing to bind one is not fatal. */
function listenUnix(path: string, control: ControlApp): Server<undefined> | undefined {
  try {
    // A socket left by a crashed agent blocks bind; the agent lock guarantees it is not live.
    if (existsSync(path) && lstatSync(path).isSocket()) rmSync(path);
    // Created 0600 through the umask, so there is no moment where another user could connect;
    // the chmod only restates it for platforms that ignore the umask for sockets.
    const previous = process.umask(0o177);
    let server: Server<undefined>;
    try {
      // No idle limit on the socket: in Bun 1.4, server.timeout() (the per-request lift the TCP
      // listener gets, see buildControlApp) does not take effect for POSTs over a unix socket —
      // a 12 s update answered ECONNRESET — while the server-wide option does (its type omits it
      // for unix servers). Only the agent's own user can connect (0600), so nothing is exposed.
      server = Bun.serve({
        unix: path,
        routes: guardRoutes(control.nativeRoutes, { unix: path }),
        fetch: guardEdge(control.app.fetch, { unix: path }),
        error: internalErrorResponse,
        ...UNIX_NO_IDLE_LIMIT,
      });
    } finally {
      process.umask(previous);
    }
    chmodSync(path, 0o600);
    return server;
  } catch (e) {
    log.child({ component: "control" }).warn("unix control socket unavailable; TCP only", {
      socket: path,
      reason: (e as Error).message,
    });
    return undefined;
  }
}
