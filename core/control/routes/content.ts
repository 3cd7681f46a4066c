/** Installed content: listing and rollback to the last-known-good version. */

import type { AgentApi } from "../../agent/api.ts";
import { realSchema } from "../../schema/lazy-schema.ts";
import { z } from "../../schema/zod.ts";
import { defineRoute, OpenApiHono } from "../openapi-route.ts";
import {
  AckResultSchema,
  COMMON_ERRORS,
  ContentInfoSchema,
  contentTypeParam,
  errorResponses,
  jsonContent,
} from "../schemas.ts";

const listRoute = defineRoute({
  method: "get",
  path: "/",
  tags: ["content"],
  summary: "Installed content, one entry per registered content type",
  responses: {
    200: {
      description: "Content types",
      content: jsonContent(() => z.array(realSchema(ContentInfoSchema))),
    },
    ...errorResponses(...COMMON_ERRORS),
  },
});

const rollbackRoute = defineRoute({
  method: "post",
  path: "/{type}/rollback",
  tags: ["content"],
  summary: "Roll a content type back to its last-known-good version",
  description:
    "Validates and loads the last-known-good copy beside the live one, switches, and marks the version it left bad so the next cycle does not reinstall it.",
  request: { params: z.object({ type: contentTypeParam }) },
  responses: {
    200: {
      description: "The type's content after the rollback",
      content: jsonContent(ContentInfoSchema),
    },
    ...errorResponses(...COMMON_ERRORS, 400, 404, 409),
  },
});

const ackRoute = defineRoute({
  method: "post",
  path: "/{type}/ack",
  tags: ["content"],
  summary: "Acknowledge an automatic rollback of a content type",
  description:
    "An automatic rollback keeps health AMBER (CONTENT_ROLLED_BACK) until a newer good version installs or this is called. Answers what was acknowledged; `acknowledged: null` when there was nothing to acknowledge.",
  request: { params: z.object({ type: contentTypeParam }) },
  responses: {
    200: {
      description: "What was acknowledged",
      content: jsonContent(AckResultSchema),
    },
    ...errorResponses(...COMMON_ERRORS, 400, 404),
  },
});

export function contentRoutes(api: AgentApi): OpenApiHono {
  const app = new OpenApiHono();
  app.openapi(listRoute, (c) => c.json(api.content(), 200));
  app.openapi(rollbackRoute, async (c) => c.json(await api.rollback(c.req.valid("param").type), 200));
  app.openapi(ackRoute, async (c) => c.json(await api.ack(c.req.valid("param").type), 200));
  return app;
}
