/**
 * `GET /metrics`: the process-wide registry in Prometheus text format.
 * Token-protected like every route but health: a scraper sends the bearer
 * token (Prometheus `authorization: { credentials_file: STATE/control.token }`).
 */
import { metrics } from "../../metrics.ts";
import { z } from "../../schema/zod.ts";
import { refreshProcessGauges } from "../http-metrics.ts";
import { defineRoute, OpenApiHono } from "../openapi-route.ts";
import { COMMON_ERRORS, errorResponses } from "../schemas.ts";

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const metricsRoute = defineRoute({
  method: "get",
  path: "/metrics",
  tags: ["metrics"],
  summary: "Prometheus metrics (text exposition format 0.0.4)",
  description:
    "Update cycles, rejections by code, installs, rollbacks, handler host restarts, control-plane requests and latencies, process memory and uptime. The metric list is in docs/control-plane.md.",
  responses: {
    200: {
      description: "Metrics",
      content: { [PROMETHEUS_CONTENT_TYPE]: { schema: z.string() } },
    },
    ...errorResponses(...COMMON_ERRORS),
  },
});

export function metricsRoutes(): OpenApiHono {
  const app = new OpenApiHono();
  app.openapi(metricsRoute, (c) => {
    refreshProcessGauges();
    return c.text(metrics.render(), 200, { "content-type": PROMETHEUS_CONTENT_TYPE });
  });
  return app;
}
