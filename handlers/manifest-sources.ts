/**
 * The built-in handlers' manifests as written (inputs to HandlerManifestSchema), one
 * module each. Read at build time (builtins.macro.ts) and by tests; a running process
 * gets them parsed, as literals.
 */
import type { HandlerManifestInput } from "../core/handler/contract.ts";
import { agentSoftwareManifest } from "./AgentSoftware/manifest.ts";
import { appfeedTypeManifest } from "./APPFEED/manifest.ts";
import { behaviorManifest } from "./Behavior/manifest.ts";
import { crtManifest } from "./CRT/manifest.ts";
import { datasetAManifest } from "./DatasetA/manifest.ts";
import { epipsDataManifest } from "./EPIPS_data/manifest.ts";
import { eshManifest } from "./ESH/manifest.ts";
import { flagsManifest } from "./Flags/manifest.ts";
import { hmpaDataManifest } from "./Hmpa_data/manifest.ts";
import { localRepDataManifest } from "./LocalRepData/manifest.ts";
import { mlModelManifest } from "./MLModel/manifest.ts";
import { ntpOverridesManifest } from "./NTP_OVERRIDES/manifest.ts";
import { productRulesFeedManifest } from "./ProductRulesFeed/manifest.ts";
import { remapperRulesManifest } from "./RemapperRules/manifest.ts";
import { repairKitManifest } from "./RepairKit/manifest.ts";
import { scheduledQueryPackManifest } from "./ScheduledQueryPack/manifest.ts";
import { telemsupManifest } from "./TELEMSUP/manifest.ts";
import { userAppfeedManifest } from "./USERAPPFEED/manifest.ts";

/** In the order of builtinHandlers() (index.ts). */
export function builtinManifests(): HandlerManifestInput[] {
  return [
    hmpaDataManifest,
    scheduledQueryPackManifest,
    datasetAManifest,
    localRepDataManifest,
    behaviorManifest,
    productRulesFeedManifest,
    repairKitManifest,
    remapperRulesManifest,
    flagsManifest,
    epipsDataManifest,
    ntpOverridesManifest,
    telemsupManifest,
    eshManifest,
    crtManifest,
    agentSoftwareManifest,
    mlModelManifest,
    appfeedTypeManifest,
    userAppfeedManifest,
  ];
}
