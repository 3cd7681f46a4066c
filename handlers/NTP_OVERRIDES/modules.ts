/**
 * Supervisor side: which kernel modules are loaded, and their versions.
 * Names come from /proc/modules and from the directories of /sys/module
 * (which also lists drivers built into the kernel — as present as a loaded
 * one); versions from /sys/module/<name>/version when the module publishes
 * one. Both paths are configurable so tests can point at a fake tree.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { LoadedModule } from "./format.ts";

export interface ModulePaths {
  procModules: string;
  sysModule: string;
}

export function readModules(paths: ModulePaths): LoadedModule[] {
  const names = new Set<string>();
  if (existsSync(paths.procModules)) {
    for (const line of readFileSync(paths.procModules, "utf8").split("\n")) {
      const name = line.split(" ")[0];
      if (name && /^[A-Za-z0-9_-]{1,64}$/.test(name)) names.add(name);
    }
  }
  if (existsSync(paths.sysModule)) {
    for (const name of readdirSync(paths.sysModule)) if (/^[A-Za-z0-9_-]{1,64}$/.test(name)) names.add(name);
  }
  return [...names].sort().map((name) => {
    let version: string | null = null;
    try {
      version =
        readFileSync(join(paths.sysModule, name, "version"), "utf8")
          .trim()
          .slice(0, 64) || null;
    } catch {
      version = null;
    }
    return { name, version };
  });
}

/** A cheap fingerprint to notice module loads, unloads and upgrades between polls. */
export function modulesFingerprint(mods: readonly LoadedModule[]): string {
  return mods.map((m) => `${m.name}@${m.version ?? ""}`).join(",");
}
