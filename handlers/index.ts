/**
 * The content handlers built into this agent. Only entry points import this
 * file: the core knows handlers solely through the registry.
 */
import type { ContentHandler } from "../core/handler/contract.ts";
import { HandlerRegistry } from "../core/handler/registry.ts";
import { agentSoftwareHandler } from "./AgentSoftware/index.ts";
import { appfeedHandler } from "./APPFEED/index.ts";
import { behaviorHandler } from "./Behavior/index.ts";
import { crtHandler } from "./CRT/index.ts";
import { datasetAHandler } from "./DatasetA/index.ts";
import { epipsDataHandler } from "./EPIPS_data/index.ts";
import { eshHandler } from "./ESH/index.ts";
import { flagsHandler } from "./Flags/index.ts";
import { builtinGroups } from "./groups.ts";
import { hmpaDataHandler } from "./Hmpa_data/index.ts";
import { localRepDataHandler } from "./LocalRepData/index.ts";
import { mlModelHandler } from "./MLModel/index.ts";
import { ntpOverridesHandler } from "./NTP_OVERRIDES/index.ts";
import { productRulesFeedHandler } from "./ProductRulesFeed/index.ts";
import { remapperRulesHandler } from "./RemapperRules/index.ts";
import { repairKitHandler } from "./RepairKit/index.ts";
import { scheduledQueryPackHandler } from "./ScheduledQueryPack/index.ts";
import { telemsupHandler } from "./TELEMSUP/index.ts";
import { userAppfeedHandler } from "./USERAPPFEED/index.ts";

export function builtinHandlers(): ContentHandler[] {
  return [
    hmpaDataHandler as ContentHandler,
    scheduledQueryPackHandler as ContentHandler,
    datasetAHandler as ContentHandler,
    localRepDataHandler as ContentHandler,
    behaviorHandler as ContentHandler,
    productRulesFeedHandler as ContentHandler,
    repairKitHandler as ContentHandler,
    remapperRulesHandler as ContentHandler,
    flagsHandler as ContentHandler,
    epipsDataHandler as ContentHandler,
    ntpOverridesHandler as ContentHandler,
    telemsupHandler as ContentHandler,
    eshHandler as ContentHandler,
    crtHandler as ContentHandler,
    agentSoftwareHandler as ContentHandler,
    mlModelHandler as ContentHandler,
    appfeedHandler as ContentHandler,
    userAppfeedHandler as ContentHandler,
  ];
}

export function defaultRegistry(): HandlerRegistry {
  const registry = new HandlerRegistry();
  for (const group of builtinGroups) registry.registerGroup(group);
  for (const handler of builtinHandlers()) registry.register(handler);
  return registry;
}
