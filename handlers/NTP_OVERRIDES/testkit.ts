/**
 * Test helpers for fake /sys/module trees (handlers/NTP_OVERRIDES/modules.ts).
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * A module unloaded and loaded again at another version, as the kernel shows it: a new
 * /sys/module/<name> directory (the reader notices a replaced module by its directory, not by
 * rewrites of the version file, which the kernel never does).
 */
export function reloadModule(sysModule: string, name: string, version: string): void {
  const next = join(sysModule, `${name}.reloading`);
  mkdirSync(next, { recursive: true });
  writeFileSync(join(next, "version"), `${version}\n`);
  rmSync(join(sysModule, name), { recursive: true, force: true });
  renameSync(next, join(sysModule, name));
}
