/** A handler's API over HTTP: the JSON body is the argument, `{ result }` the answer. */

import type { AgentApi } from "../../agent/api.ts";
import { z } from "../../schema/zod.ts";
import { ControlError } from "../errors.ts";
import { defineRoute, OpenApiHono } from "../openapi-route.ts";
import {
  COMMON_ERRORS,
  contentTypeParam,
  errorResponses,
  HandlerResultSchema,
  jsonContent,
  methodParam,
} from "../schemas.ts";

const callRoute = defineRoute({
  method: "post",
  path: "/{type}/{method}",
  tags: ["handlers"],
  summary: "Call a handler's API method",
  description:
    "The body is the method's argument (any JSON; empty means null), whatever its Content-Type. The handler validates it and answers HND_<TYPE>_BAD_ARGS (400) when it does not fit. The call is abandoned if the client disconnects.",
  request: {
    params: z.object({ type: contentTypeParam, method: methodParam }),
    // A plain JSON Schema, not zod: the handler owns its argument's shape, and parsing stays here
    // so malformed JSON is CTL_BAD_REQUEST whatever the Content-Type.
    body: { content: { "application/json": { schema: {} } }, required: false },
  },
  responses: {
    200: {
      description: "The method's result",
      content: jsonContent(HandlerResultSchema),
    },
    ...errorResponses(...COMMON_ERRORS, 400, 404, 409, 413),
  },
});

export function handlerRoutes(api: AgentApi): OpenApiHono {
  const app = new OpenApiHono();
  app.openapi(callRoute, async (c) => {
    const { type, method } = c.req.valid("param");
    const text = await c.req.text();
    let args: unknown = null;
    if (text.trim() !== "") {
      try {
        args = JSON.parse(text);
      } catch (e) {
        throw new ControlError("CTL_BAD_REQUEST", `request body is not valid JSON: ${(e as Error).message}`);
      }
    }
    const result = await api.call(type, method, args, { signal: c.req.raw.signal });
    // `undefined` would vanish from the JSON; the client must still see the key.
    return c.json({ result: result ?? null }, 200);
  });
  return app;
}
