/**
 * Control-plane metrics on the process-wide registry: requests by route
 * pattern (`/v1/content/:type/rollback`, never the raw path, so a scanner
 * cannot grow the label set), method and status; time to response headers
 * by route; and process gauges refreshed when /metrics is scraped.
 */
import type { Context } from "hono";
import { matchedRoutes } from "hono/route";
import { metrics } from "../metrics.ts";
import { COMMIT, VERSION } from "../version.ts";

const requests = metrics.counter(
  "outpost_http_requests_total",
  "Control-plane requests, by route pattern, method and status",
);
const latency = metrics.histogram(
  "outpost_http_request_seconds",
  "Control-plane time to response headers, by route pattern",
  [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
);
const rss = metrics.gauge("outpost_process_resident_memory_bytes", "Agent process resident set size");
const heap = metrics.gauge("outpost_process_heap_used_bytes", "Agent process JavaScript heap in use");
const uptime = metrics.gauge("outpost_process_uptime_seconds", "Seconds since the agent process started");
/** Full collections `agent run` makes when the process goes quiet (core/cli/agent/run.ts). */
export const idleCollections = metrics.counter(
  "outpost_process_idle_collections_total",
  "Full garbage collections the agent process made after going quiet (Bun's GC timer is off under systemd)",
);
const buildInfo = metrics.gauge("outpost_build_info", "Agent build; the value is always 1");
export const eventStreamsGauge = metrics.gauge(
  "outpost_control_event_streams",
  "Open GET /v1/events connections",
);

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** The pattern of the endpoint that matched (middleware excluded), or "unmatched". */
export function routeLabel(c: Context): string {
  const routes = matchedRoutes(c);
  for (let i = routes.length - 1; i >= 0; i--) {
    const r = routes[i]!;
    if (r.method !== "ALL") return r.path;
  }
  return "unmatched";
}

type Bound = { count: { inc(): void }; latency: { observe(v: number): void } };

/**
 * Label sets are few (routes × methods × statuses) and the same ones recur
 * on every request, so each gets its bound series once: the per-request
 * cost is two map lookups, not a label-key computation.
 */
const byRoute = new Map<
  string,
  { latency: { observe(v: number): void }; byCall: Map<string | number, Bound> }
>();

function seriesFor(route: string, method: string, status: number): Bound {
  let r = byRoute.get(route);
  if (!r) {
    r = { latency: latency.bind({ route }), byCall: new Map() };
    byRoute.set(route, r);
  }
  const call = method === "GET" ? status : `${method}${status}`;
  let b = r.byCall.get(call);
  if (!b) {
    b = { count: requests.bind({ route, method, status: String(status) }), latency: r.latency };
    r.byCall.set(call, b);
  }
  return b;
}

/** Counts a finished request (its response set on `c`) that started at `started` (performance.now()). */
export function recordRequest(c: Context, started: number): void {
  countRequest(routeLabel(c), c.req.method, c.res.status, started);
}

/** The same accounting for a request answered outside Hono (the status fast path). */
export function countRequest(route: string, method: string, status: number, started: number): void {
  const b = seriesFor(route, METHODS.has(method) ? method : "OTHER", status);
  b.count.inc();
  b.latency.observe((performance.now() - started) / 1000);
}

export function refreshProcessGauges(): void {
  const mem = process.memoryUsage();
  rss.set(undefined, mem.rss);
  heap.set(undefined, mem.heapUsed);
  uptime.set(undefined, Math.round(process.uptime() * 1000) / 1000);
  buildInfo.set({ version: VERSION, commit: COMMIT }, 1);
}
