/**
 * The agent's local control plane: a small Hono app over the AgentApi
 * façade, served on loopback TCP and (where the platform allows) a unix
 * socket. Every route but health needs the bearer token that only the
 * agent's user can read from the state directory; every failure goes
 * through the single error mapping in `onError`.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, rmSync } from "node:fs";
import { isIP } from "node:net";
import type { Server } from "bun";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { AgentApi } from "../agent/api.ts";
import { statePaths } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { atomicWriteFile, atomicWriteJson } from "../fsutil.ts";
import { log } from "../log.ts";
import { requireToken } from "./auth.ts";
import { ControlError, errorBody, httpStatusFor } from "./errors.ts";
import type { ControlContext, RouteExtension } from "./extensions.ts";
import { agentRoutes } from "./routes/agent.ts";
import { contentRoutes } from "./routes/content.ts";
import { handlerRoutes } from "./routes/handlers.ts";

export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;

export interface ControlAppOptions {
  token: string;
  bodyLimitBytes?: number;
  extensions?: RouteExtension[];
  events?: ControlContext["events"];
}

export function createControlApp(api: AgentApi, opts: ControlAppOptions): Hono {
  const maxSize = opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const app = new Hono();

  app.onError((err, c) => {
    if (err instanceof HTTPException) {
      const code = err.status === 413 ? "CTL_BODY_TOO_LARGE" : `CTL_HTTP_${err.status}`;
      return c.json({ error: { code, message: err.message || `HTTP ${err.status}` } }, err.status);
    }
    const body = errorBody(err);
    const status = httpStatusFor(body.error.code);
    if (status >= 500)
      log.child({ component: "control" }).error("request failed", { path: c.req.path, ...body.error });
    return c.json(body, status);
  });
  app.notFound((c) => {
    const err = new ControlError("CTL_NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`);
    return c.json(errorBody(err), 404);
  });

  // Health stays open so supervisors can probe liveness without the token.
  app.get("/v1/health", (c) => c.json({ status: "ok" }));
  app.use("/v1/*", requireToken(opts.token));
  app.use(
    "/v1/*",
    bodyLimit({
      maxSize,
      onError: () => {
        throw new ControlError("CTL_BODY_TOO_LARGE", `request body exceeds ${maxSize} bytes`);
      },
    }),
  );
  app.route("/v1", agentRoutes(api));
  app.route("/v1/content", contentRoutes(api));
  app.route("/v1/handlers", handlerRoutes(api));
  for (const ext of opts.extensions ?? []) {
    const v1 = new Hono();
    ext.mount(v1, { api, events: opts.events });
    app.route("/v1", v1);
  }
  return app;
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
  events?: ControlContext["events"];
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
  return isIP(host) === 4 && host.startsWith("127.");
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

  const token = randomBytes(32).toString("hex");
  // The token lands before control.json: a client that finds control.json can always read a matching token.
  atomicWriteFile(paths.controlToken, `${token}\n`, 0o600);

  const app = createControlApp(opts.api, {
    token,
    bodyLimitBytes: opts.bodyLimitBytes,
    extensions: opts.extensions,
    events: opts.events,
  });
  const tcp = Bun.serve({ hostname: host, port: opts.port ?? 0, fetch: app.fetch });
  const unix = listenUnix(paths.controlSocket, app);

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
      await Promise.all([tcp.stop(true), unix?.stop(true)]);
      rmSync(paths.controlSocket, { force: true });
    },
  };
}

/** Unix sockets are an optimisation (no port, file permissions): failing to bind one is not fatal. */
function listenUnix(path: string, app: Hono): Server<undefined> | undefined {
  try {
    // A socket left by a crashed agent blocks bind; the agent lock guarantees it is not live.
    if (existsSync(path) && lstatSync(path).isSocket()) rmSync(path);
    const server = Bun.serve({ unix: path, fetch: app.fetch });
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
