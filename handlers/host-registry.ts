/**
 * The built-in handlers one host group needs, imported lazily: a host
 * process evaluates only its own group's modules (a scanner host never
 * loads the Lua engine), which keeps its start-up short and its memory
 * small. handlers/groups.test.ts checks this table against
 * builtinHandlers(): a handler missing here is caught there, and the host
 * would still find it through the full registry (slower).
 */

import { HandlerError } from "../core/errors.ts";
import type { ContentHandler } from "../core/handler/contract.ts";
import { HandlerRegistry } from "../core/handler/registry.ts";
import { parsedBuiltinGroups } from "./builtins.macro.ts" with { type: "macro" };

/** The built-in groups, parsed when the executable was built (builtins.macro.ts). */
const BUILTIN_GROUPS = parsedBuiltinGroups();

type Module = Record<string, unknown>;

/** Content type → the module that exports its handler (literal imports, so the bundler includes them). */
export const HANDLER_MODULES: Record<string, () => Promise<Module>> = {
  Hmpa_data: () => import("./Hmpa_data/index.ts"),
  DatasetA: () => import("./DatasetA/index.ts"),
  LocalRepData: () => import("./LocalRepData/index.ts"),
  MLModel: () => import("./MLModel/index.ts"),
  Behavior: () => import("./Behavior/index.ts"),
  ProductRulesFeed: () => import("./ProductRulesFeed/index.ts"),
  ScheduledQueryPack: () => import("./ScheduledQueryPack/index.ts"),
  RepairKit: () => import("./RepairKit/index.ts"),
  APPFEED: () => import("./APPFEED/index.ts"),
  USERAPPFEED: () => import("./USERAPPFEED/index.ts"),
  // RemapperRules loads its parsers on first use; a host must have them before Landlock.
  RemapperRules: async () => {
    const m = await import("./RemapperRules/index.ts");
    await m.loadEngine();
    return m;
  },
  Flags: () => import("./Flags/index.ts"),
  EPIPS_data: () => import("./EPIPS_data/index.ts"),
  NTP_OVERRIDES: () => import("./NTP_OVERRIDES/index.ts"),
  TELEMSUP: () => import("./TELEMSUP/index.ts"),
  ESH: () => import("./ESH/index.ts"),
  CRT: () => import("./CRT/index.ts"),
  AgentSoftware: () => import("./AgentSoftware/index.ts"),
};

/** Host group → the content types whose handlers it runs. */
export const GROUP_TYPES: Record<string, string[]> = {
  hmpa: ["Hmpa_data"],
  scanner: ["DatasetA", "LocalRepData", "MLModel"],
  behavior: ["Behavior", "ProductRulesFeed"],
  query: ["ScheduledQueryPack"],
  repair: ["RepairKit"],
  appfeed: ["APPFEED", "USERAPPFEED"],
  config: ["RemapperRules", "Flags"],
  ips: ["EPIPS_data", "NTP_OVERRIDES"],
  telemetry: ["TELEMSUP"],
  esh: ["ESH"],
  install: ["CRT"],
  software: ["AgentSoftware"],
};

/** Host group → the modules that export its handlers. */
export const GROUP_MODULES: Record<string, (() => Promise<Module>)[]> = Object.fromEntries(
  Object.entries(GROUP_TYPES).map(([group, types]) => [group, types.map((t) => HANDLER_MODULES[t]!)]),
);

function handlersIn(mod: Module): ContentHandler[] {
  const found = new Set<ContentHandler>();
  for (const v of Object.values(mod)) {
    const h = v as Partial<ContentHandler> | null;
    // Own properties only: reading `manifest` off another export (a lazy zod schema) would build it.
    if (
      h &&
      typeof h === "object" &&
      Object.hasOwn(h, "manifest") &&
      typeof h.manifest?.name === "string" &&
      typeof h.validate === "function"
    ) {
      found.add(h as ContentHandler);
    }
  }
  return [...found];
}

/**
 * The groups a host process runs: the process `name` several groups share (groups.ts `process`,
 * rule G3), or the one group of that name.
 */
export function groupsOfProcess(name: string): string[] {
  const shared = BUILTIN_GROUPS.filter((g) => g.process === name).map((g) => g.name);
  return shared.length ? shared : [name];
}

/** A registry with the built-in groups and only the handlers of `group` (or of the groups sharing that process). */
export async function registryForGroup(group: string): Promise<HandlerRegistry> {
  const registry = new HandlerRegistry();
  for (const g of BUILTIN_GROUPS) registry.registerGroup(g);
  const groups = groupsOfProcess(group);
  const mods = await Promise.all(groups.flatMap((g) => GROUP_MODULES[g] ?? []).map((load) => load()));
  for (const h of mods.flatMap(handlersIn)) {
    if (groups.includes(h.manifest.group) && !registry.get(h.manifest.name)) registry.register(h);
  }
  return registry;
}

/** The built-in handler for `type`, importing only its own module (handlers/manifests.ts defers to this). */
export async function handlerFor(type: string): Promise<ContentHandler> {
  const load = HANDLER_MODULES[type];
  const handler = load ? handlersIn(await load()).find((h) => h.manifest.name === type) : undefined;
  if (!handler) throw new HandlerError("HND_UNKNOWN_TYPE", `no built-in handler for content type ${type}`);
  return handler;
}
