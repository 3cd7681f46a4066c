/**
 * Supervisor side: which kernel modules are loaded, and their versions.
 * Names come from /proc/modules and from the directories of /sys/module
 * (which also lists drivers built into the kernel — as present as a loaded
 * one); versions from /sys/module/<name>/version when the module publishes
 * one. Both paths are configurable so tests can point at a fake tree.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { LoadedModule } from "./format.ts";

export interface ModulePaths {
  procModules: string;
  sysModule: string;
}

export function readModules(paths: ModulePaths): LoadedModule[] {
  return new ModuleReader(paths).read();
}

/**
 * readModules for a poll (the IPS service's, every `ips.modules.pollMs`): a module's version file is
 * read when its name first appears and again only when the module may have been replaced — a
 * loadable module (listed in /proc/modules) whose /sys/module/<name> directory is a new one (kernfs
 * numbers a recreated directory anew, so an unload and reload between two polls shows). Built-in
 * drivers, listed in /sys/module only, cannot change while the kernel runs. Before, every poll read
 * every version file: ~80 opens a poll on this CI machine, most of them failing (issue 21, idle CPU).
 */
export class ModuleReader {
  private readonly known = new Map<string, { identity: string; version: string | null }>();

  constructor(private readonly paths: ModulePaths) {}

  read(): LoadedModule[] {
    const loadable = new Set<string>();
    if (existsSync(this.paths.procModules)) {
      for (const line of readFileSync(this.paths.procModules, "utf8").split("\n")) {
        const name = line.split(" ")[0];
        if (name && MODULE_NAME.test(name)) loadable.add(name);
      }
    }
    const names = new Set(loadable);
    if (existsSync(this.paths.sysModule)) {
      for (const name of readdirSync(this.paths.sysModule)) if (MODULE_NAME.test(name)) names.add(name);
    }
    const out: LoadedModule[] = [];
    for (const name of [...names].sort()) {
      const identity = loadable.has(name) ? this.identityOf(name) : "built-in";
      let entry = this.known.get(name);
      if (!entry || entry.identity !== identity) {
        entry = { identity, version: this.versionOf(name) };
        this.known.set(name, entry);
      }
      out.push({ name, version: entry.version });
    }
    for (const name of this.known.keys()) if (!names.has(name)) this.known.delete(name);
    return out;
  }

  private identityOf(name: string): string {
    const st = statSync(join(this.paths.sysModule, name), { throwIfNoEntry: false });
    return st ? `${st.dev}:${st.ino}:${st.ctimeMs}` : "absent";
  }

  private versionOf(name: string): string | null {
    try {
      return (
        readFileSync(join(this.paths.sysModule, name, "version"), "utf8")
          .trim()
          .slice(0, 64) || null
      );
    } catch {
      return null;
    }
  }
}

const MODULE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** A cheap fingerprint to notice module loads, unloads and upgrades between polls. */
export function modulesFingerprint(mods: readonly LoadedModule[]): string {
  return mods.map((m) => `${m.name}@${m.version ?? ""}`).join(",");
}
