/**
 * The built-in handlers by manifest, their code loaded on first use. A
 * supervisor whose handlers run in host processes (HostManager) needs only
 * what the manifests say — group, privileges, limits — and each host
 * process imports its own group's code (host-registry.ts). So a one-shot
 * command (`agent scan` offline) does not evaluate every handler's modules
 * before it can start the one scanner host it needs: those modules are
 * ~110 ms of CPU and ~10 MB in the compiled agent (bench/scan-startup.ts).
 *
 * Each entry is the real handler behind a forwarder: `validate` and `load`
 * import the handler's module and call it, and the optional methods are
 * those of the real handler once loaded (`load` comes first). index.ts is
 * the eager registry; handlers/manifests.test.ts checks both agree.
 */
import { HandlerError } from "../core/errors.ts";
import type { ContentHandler, HandlerManifest, HandlerManifestInput } from "../core/handler/contract.ts";
import { HandlerManifestSchema } from "../core/handler/contract.ts";
import { HandlerRegistry } from "../core/handler/registry.ts";
import { agentSoftwareManifest } from "./AgentSoftware/manifest.ts";
import { appfeedTypeManifest } from "./APPFEED/manifest.ts";
import { behaviorManifest } from "./Behavior/manifest.ts";
import { crtManifest } from "./CRT/manifest.ts";
import { datasetAManifest } from "./DatasetA/manifest.ts";
import { epipsDataManifest } from "./EPIPS_data/manifest.ts";
import { eshManifest } from "./ESH/manifest.ts";
import { flagsManifest } from "./Flags/manifest.ts";
import { builtinGroups } from "./groups.ts";
import { hmpaDataManifest } from "./Hmpa_data/manifest.ts";
import { handlerFor } from "./host-registry.ts";
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

/** A handler known by its manifest whose code is imported by `load` (and `validate`) on first use. */
export function deferredHandler(
  manifest: HandlerManifest,
  importHandler: () => Promise<ContentHandler<unknown>>,
): ContentHandler<unknown> {
  let real: ContentHandler<unknown> | undefined;
  const code = async () => {
    real ??= await importHandler();
    return real;
  };
  const loaded = (what: string): ContentHandler<unknown> => {
    if (!real) throw new HandlerError("HND_NOT_LOADED", `${manifest.name}: ${what} before load`);
    return real;
  };
  return {
    manifest,
    validate: async (view) => (await code()).validate(view),
    load: async (view, caps) => (await code()).load(view, caps),
    unload: (live) => loaded("unload").unload?.(live),
    status: (live) => loaded("status").status?.(live) ?? {},
    call: (live, method, args, ctx) => {
      const h = loaded("call");
      if (!h.call) throw new HandlerError("HND_NO_API", `${manifest.name} offers no API`);
      return h.call(live, method, args, ctx);
    },
  };
}

export interface ManifestRegistryOptions {
  /**
   * Only the handlers of these host groups, plus every handler that contributes to the agent's
   * own state (`manifest.contributes`: policy overlays, flags, agent software — what the effective
   * config is computed from). An agent built on it loads, and starts hosts for, nothing else:
   * `agent scan` offline needs the scanner group, not the seven others an endpoint has installed.
   */
  groups?: readonly string[];
  /** With `groups`: also the contributing handlers (default true; false when the agent will not recompute its state). */
  contributors?: boolean;
}

/** The built-in groups and handlers, by manifest; each handler's code loads on first use. */
export function manifestRegistry(opts: ManifestRegistryOptions = {}): HandlerRegistry {
  const registry = new HandlerRegistry();
  for (const group of builtinGroups) registry.registerGroup(group);
  for (const input of builtinManifests()) {
    const manifest = HandlerManifestSchema.parse(input);
    const contributes = opts.contributors !== false && (manifest.contributes?.length ?? 0) > 0;
    const wanted = !opts.groups || opts.groups.includes(manifest.group) || contributes;
    if (wanted) registry.register(deferredHandler(manifest, () => handlerFor(manifest.name)));
  }
  return registry;
}
