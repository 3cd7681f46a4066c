/**
 * Control-plane routes of the query feature, mounted under /v1 through the
 * RouteExtension seam (documented in GET /v1/openapi.json):
 *
 *   POST /v1/query          {"sql": "SELECT …"} → columns, rows, warnings, stats
 *                           (the ad-hoc worker, under the same watchdog as the schedule)
 *   GET  /v1/queries/stats  per-query runs, time, rows, errors, watchdog kills, denylist,
 *                           outbox and sink counters (also mirrored into /metrics)
 */
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { errorBody } from "../../core/control/errors.ts";
import type { RouteExtension } from "../../core/control/extensions.ts";
import { doc, named } from "../../core/control/openapi-document.ts";
import { defineRoute, type OpenApiHono } from "../../core/control/openapi-route.ts";
import { COMMON_ERRORS, errorResponses } from "../../core/control/schemas.ts";
import { isOutpostError } from "../../core/errors.ts";
import { z } from "../../core/schema/zod.ts";
import { resultsServiceOf } from "./service.ts";

const TYPE = "ScheduledQueryPack";

const RunStatsSchema = z.object({
  wallMs: z.number(),
  cpuMs: doc(z.number(), { description: "Worker CPU time (user + system) spent on the query" }),
  peakMemoryBytes: doc(z.number(), { description: "Largest resident growth of the worker during the query" }),
});

export const QueryResultSchema = named(
  "QueryResult",
  z.object({
    engine: z.enum(["embedded", "osqueryd"]),
    columns: z.array(z.string()),
    rows: doc(z.array(z.record(z.string(), z.string())), {
      description: "osquery style: every value a string",
    }),
    rowCount: z.int(),
    truncated: z.boolean(),
    warnings: z.array(z.string()),
    stats: RunStatsSchema,
  }),
);

const queryRoute = defineRoute({
  method: "post",
  path: "/query",
  tags: ["queries"],
  summary: "Run an ad-hoc osquery-style SQL query on this host",
  description:
    "Runs on the query host's ad-hoc worker under the scheduled queries' watchdog (memory, CPU, wall time). Only single SELECT/WITH/VALUES statements. 400: bad SQL or unknown table; 422: the watchdog killed the query (HND_QUERY_WATCHDOG); 429: too many ad-hoc queries waiting; 409: no ScheduledQueryPack content loaded.",
  request: {
    body: {
      content: {
        "application/json": {
          schema: z.object({
            sql: doc(z.string().check(z.minLength(1)), { example: "SELECT pid, name FROM processes" }),
          }),
        },
      },
      required: true,
    },
  },
  responses: {
    200: { description: "The rows", content: { "application/json": { schema: QueryResultSchema } } },
    ...errorResponses(...COMMON_ERRORS, 400, 409, 422, 429, 503),
  },
});

const QueryStatsSchema = named(
  "QueryStats",
  z.looseObject({
    engine: z.string(),
    totals: z.looseObject({
      runs: z.number(),
      rows: z.number(),
      errors: z.number(),
      watchdogKills: z.number(),
    }),
    queries: z.array(
      z.looseObject({
        name: doc(z.string(), { example: "pack_incident-response_crontab" }),
        runs: z.number(),
        rows: z.number(),
        avgWallMs: z.number(),
        errors: z.number(),
        watchdogKills: z.number(),
        denylistedUntil: z.nullable(z.string()),
        denylistReason: z.nullable(z.string()),
      }),
    ),
    delivery: doc(z.unknown(), {
      description: "Result pipeline counters and per-sink statistics (null when not running)",
    }),
  }),
);

const statsRoute = defineRoute({
  method: "get",
  path: "/queries/stats",
  tags: ["queries"],
  summary: "Scheduled-query telemetry: runs, time, rows, watchdog kills, denylist, delivery",
  responses: {
    200: {
      description: "Per-query statistics",
      content: { "application/json": { schema: QueryStatsSchema } },
    },
    ...errorResponses(...COMMON_ERRORS, 409),
  },
});

/** The query's fault → 400; the watchdog's verdict → 422; a full queue → 429; osqueryd away → 503. */
function statusFor(code: string): ContentfulStatusCode | undefined {
  if (
    [
      "HND_QUERY_SQL",
      "HND_QUERY_REFUSED",
      "HND_QUERY_UNKNOWN_TABLE",
      "HND_QUERY_UNKNOWN_FUNCTION",
      "HND_QUERY_BAD_ARGS",
    ].includes(code)
  )
    return 400;
  if (code === "HND_QUERY_WATCHDOG") return 422;
  if (code === "HND_QUERY_BUSY") return 429;
  if (code === "HND_QUERY_OSQUERYD_UNAVAILABLE") return 503;
  return undefined;
}

export function queryRoutes(): RouteExtension {
  return {
    name: TYPE,
    mount(v1: OpenApiHono, { api }) {
      v1.openapi(queryRoute, async (c) => {
        const { sql } = c.req.valid("json");
        try {
          const result = await api.call(TYPE, "query", { sql }, { signal: c.req.raw.signal });
          return c.json(result as z.infer<typeof QueryResultSchema>, 200);
        } catch (e) {
          const status = isOutpostError(e) ? statusFor(e.code) : undefined;
          if (!status) throw e;
          return c.json(errorBody(e), status as 400);
        }
      });
      v1.openapi(statsRoute, async (c) => {
        const stats = (await api.call(TYPE, "stats", {}, { signal: c.req.raw.signal })) as Record<
          string,
          unknown
        >;
        const service = resultsServiceOf(api);
        // Keep /metrics in step with what the caller is shown.
        await service?.refreshMetrics(stats).catch(() => {});
        const body = {
          ...stats,
          delivery: service
            ? { ...service.counters, lastError: service.lastError, sinks: service.sinkStats() }
            : null,
        };
        return c.json(body as z.infer<typeof QueryStatsSchema>, 200);
      });
    },
  };
}
