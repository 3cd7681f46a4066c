/** Installed content: listing and rollback to the last-known-good version. */
import { Hono } from "hono";
import type { AgentApi } from "../../agent/api.ts";
import { contentTypeParam } from "./params.ts";

export function contentRoutes(api: AgentApi): Hono {
  return new Hono()
    .get("/", (c) => c.json(api.content()))
    .post("/:type/rollback", async (c) => c.json(await api.rollback(contentTypeParam(c.req.param("type")))));
}
