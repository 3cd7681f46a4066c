/** Whole-agent routes: status and an on-demand update cycle. */
import { Hono } from "hono";
import type { AgentApi } from "../../agent/api.ts";

export function agentRoutes(api: AgentApi): Hono {
  return new Hono()
    .get("/status", (c) => c.json(api.status()))
    .post("/update", async (c) => c.json(await api.update()));
}
