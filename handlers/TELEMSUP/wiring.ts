/** How `agent run` starts the telemetry service beside the agent (bin/agent-main.ts). */
import type { ServiceContext } from "../../core/cli/agent/session.ts";
import { TelemetryService } from "./service.ts";

export function telemetryService(ctx: ServiceContext): TelemetryService {
  return new TelemetryService({ agent: ctx.api, config: ctx.config });
}
