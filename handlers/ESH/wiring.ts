/** How `agent run` starts the self-help reader beside the agent (bin/agent-main.ts). */
import type { ServiceContext } from "../../core/cli/agent/session.ts";
import { SelfHelpService } from "./service.ts";

export function selfHelpService(ctx: ServiceContext): SelfHelpService {
  return new SelfHelpService({ agent: ctx.api, config: ctx.config });
}
