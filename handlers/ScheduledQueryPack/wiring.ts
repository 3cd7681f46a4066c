/**
 * How the entry point plugs the query feature into `agent run`: the
 * control-plane routes, and the supervisor-side results service that must
 * run beside the agent. The agent wiring has no seam for background
 * services yet, so the service starts when `agent run` mounts the control
 * plane (the one place that has the live AgentApi) with the config the
 * wiring saw; it needs no orderly stop — every step it takes is durable
 * and repeatable (docs/queries.md, "Data path").
 */
import type { AgentConfig } from "../../core/config.ts";
import type { RouteExtension } from "../../core/control/extensions.ts";
import { describeError } from "../../core/errors.ts";
import { log } from "../../core/log.ts";
import { queryRoutes } from "./routes.ts";
import { queryResultsService } from "./service.ts";

export function queryExtensions(config: () => AgentConfig | undefined): RouteExtension[] {
  return [
    queryRoutes(),
    {
      name: "query-results",
      mount(_v1, { api }) {
        const c = config();
        if (!c) {
          log.warn("query results service not started: no agent config seen", { component: "query-results" });
          return;
        }
        try {
          queryResultsService({ api, config: c }).start();
        } catch (e) {
          // A broken sink (unreadable token file…) must not keep the control plane from starting.
          log.error("query results service not started", { component: "query-results", ...describeError(e) });
        }
      },
    },
  ];
}
