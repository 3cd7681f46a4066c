/**
 * How the entry point plugs the query feature into `agent run`: the
 * control-plane routes, and the supervisor-side results service, started
 * and stopped through the session's service hook with the agent it serves
 * (docs/queries.md, "Data path"). Every step the service takes is durable
 * and repeatable, so a stop at any point loses nothing.
 */
import type { AgentConfig } from "../../core/config.ts";
import type { RouteExtension } from "../../core/control/extensions.ts";
import { queryRoutes } from "./routes.ts";
import { type HandlerCaller, resultsAgentService } from "./service.ts";

export function queryExtensions(): RouteExtension[] {
  return [queryRoutes()];
}

export function queryServices(ctx: {
  api: HandlerCaller;
  config: AgentConfig;
}): ReturnType<typeof resultsAgentService>[] {
  return [resultsAgentService(ctx)];
}
