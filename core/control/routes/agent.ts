/** Whole-agent routes: liveness, status and an on-demand update cycle. */

import type { Context } from "hono";
import type { AgentApi } from "../../agent/api.ts";
import { defineRoute, OpenApiHono } from "../openapi-route.ts";
import {
  AgentStatusSchema,
  COMMON_ERRORS,
  errorResponses,
  HealthProbeSchema,
  jsonContent,
  UpdateCycleReportSchema,
} from "../schemas.ts";
import type { StatusCache } from "../status-cache.ts";

export const healthRoute = defineRoute({
  method: "get",
  path: "/health",
  tags: ["agent"],
  summary: "Liveness probe",
  description:
    "The only route that needs no token: supervisors probe it. Says nothing about the agent's state.",
  security: [],
  responses: {
    200: {
      description: "The control plane answers",
      content: jsonContent(HealthProbeSchema),
    },
  },
});

const statusRoute = defineRoute({
  method: "get",
  path: "/status",
  tags: ["agent"],
  summary: "Health, update state, content, hosts and last errors",
  description:
    "AgentStatus exactly as the agent computes it. Cached: rebuilt after any agent event and at most 1 s after it was built, so time-derived fields (uptimeSeconds, nextRun) may be up to a second old.",
  responses: {
    200: {
      description: "The agent's status",
      content: jsonContent(AgentStatusSchema),
    },
    ...errorResponses(...COMMON_ERRORS),
  },
});

const updateRoute = defineRoute({
  method: "post",
  path: "/update",
  tags: ["agent"],
  summary: "Run an update cycle now",
  description:
    "Waits for the cycle (queued behind one already running) and returns its report. A cycle that rejected content still answers 200 with ok: false; 422 means the cycle itself could not run (e.g. trust store unreadable).",
  responses: {
    200: {
      description: "The cycle's report",
      content: jsonContent(UpdateCycleReportSchema),
    },
    ...errorResponses(...COMMON_ERRORS, 400, 409, 422),
  },
});

const JSON_TYPE = { "content-type": "application/json" };

export function agentRoutes(api: AgentApi, statusCache: StatusCache): OpenApiHono {
  const app = new OpenApiHono();
  app.openapi(healthRoute, (c) => c.json({ status: "ok" as const }, 200));
  // Served as the cached text: re-serialising per request would cost more than the route itself.
  // The text is JSON.stringify(AgentStatus); the typed-response check cannot see through a string.
  const respond = (c: Context, json: string) => c.body(json, 200, JSON_TYPE) as never;
  app.openapi(statusRoute, (c) => {
    const fresh = statusCache.fresh();
    return fresh !== undefined ? respond(c, fresh) : statusCache.get().then((json) => respond(c, json));
  });
  app.openapi(updateRoute, async (c) => c.json(await api.update(), 200));
  return app;
}
