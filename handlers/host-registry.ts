/**
 * The built-in handlers one host group needs, imported lazily: a host
 * process evaluates only its own group's modules (a scanner host never
 * loads the Lua engine), which keeps its start-up short and its memory
 * small. handlers/groups.test.ts checks this table against
 * builtinHandlers(): a handler missing here is caught there, and the host
 * would still find it through the full registry (slower).
 */
import type { ContentHandler } from "../core/handler/contract.ts";
import { HandlerRegistry } from "../core/handler/registry.ts";
import { builtinGroups } from "./groups.ts";

type Module = Record<string, unknown>;

/** Host group → the modules that export its handlers (literal imports, so the bundler includes them). */
export const GROUP_MODULES: Record<string, (() => Promise<Module>)[]> = {
  hmpa: [() => import("./Hmpa_data/index.ts")],
  scanner: [
    () => import("./DatasetA/index.ts"),
    () => import("./LocalRepData/index.ts"),
    () => import("./MLModel/index.ts"),
  ],
  behavior: [() => import("./Behavior/index.ts"), () => import("./ProductRulesFeed/index.ts")],
  query: [() => import("./ScheduledQueryPack/index.ts")],
  repair: [() => import("./RepairKit/index.ts")],
  appfeed: [() => import("./APPFEED/index.ts"), () => import("./USERAPPFEED/index.ts")],
  config: [
    // RemapperRules loads its parsers on first use; a host must have them before Landlock.
    async () => {
      const m = await import("./RemapperRules/index.ts");
      await m.loadEngine();
      return m;
    },
    () => import("./Flags/index.ts"),
  ],
  ips: [() => import("./EPIPS_data/index.ts"), () => import("./NTP_OVERRIDES/index.ts")],
  telemetry: [() => import("./TELEMSUP/index.ts")],
  esh: [() => import("./ESH/index.ts")],
  install: [() => import("./CRT/index.ts")],
  software: [() => import("./AgentSoftware/index.ts")],
};

function handlersIn(mod: Module): ContentHandler[] {
  const found = new Set<ContentHandler>();
  for (const v of Object.values(mod)) {
    const h = v as Partial<ContentHandler> | null;
    if (
      h &&
      typeof h === "object" &&
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
  const shared = builtinGroups.filter((g) => g.process === name).map((g) => g.name);
  return shared.length ? shared : [name];
}

/** A registry with the built-in groups and only the handlers of `group` (or of the groups sharing that process). */
export async function registryForGroup(group: string): Promise<HandlerRegistry> {
  const registry = new HandlerRegistry();
  for (const g of builtinGroups) registry.registerGroup(g);
  const groups = groupsOfProcess(group);
  const mods = await Promise.all(groups.flatMap((g) => GROUP_MODULES[g] ?? []).map((load) => load()));
  for (const h of mods.flatMap(handlersIn)) {
    if (groups.includes(h.manifest.group) && !registry.get(h.manifest.name)) registry.register(h);
  }
  return registry;
}
