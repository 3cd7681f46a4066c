import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ModuleReader, readModules } from "./modules.ts";
import { reloadModule } from "./testkit.ts";

let dir: string;
let paths: { procModules: string; sysModule: string };

/** A /sys/module/<name> directory, with a version file when `version` is given. */
function sysModule(name: string, version?: string): void {
  mkdirSync(join(paths.sysModule, name), { recursive: true });
  if (version !== undefined) writeFileSync(join(paths.sysModule, name, "version"), `${version}\n`);
}

function procModules(...names: string[]): void {
  writeFileSync(paths.procModules, names.map((n) => `${n} 16384 0 - Live 0xffffffffc0000000\n`).join(""));
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "outpost-modules-"));
  paths = { procModules: join(dir, "modules"), sysModule: join(dir, "sys-module") };
  mkdirSync(paths.sysModule);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("loaded kernel modules (NTP_OVERRIDES)", () => {
  test("names from /proc/modules and /sys/module, versions where a module publishes one", () => {
    procModules("vboxdrv", "nf_tables");
    sysModule("vboxdrv", "7.0.14");
    sysModule("nf_tables");
    sysModule("virtio_net", "1.0.0");
    sysModule("bad name!");
    expect(readModules(paths)).toEqual([
      { name: "nf_tables", version: null },
      { name: "vboxdrv", version: "7.0.14" },
      { name: "virtio_net", version: "1.0.0" },
    ]);
  });

  test("a poll re-reads a version only for a loadable module whose directory was replaced", () => {
    procModules("vboxdrv");
    sysModule("vboxdrv", "7.0.14");
    sysModule("virtio_net", "1.0.0");
    const reader = new ModuleReader(paths);
    expect(reader.read()).toEqual([
      { name: "vboxdrv", version: "7.0.14" },
      { name: "virtio_net", version: "1.0.0" },
    ]);
    // The same directories: their version files are not read again (a built-in's never is).
    writeFileSync(join(paths.sysModule, "virtio_net", "version"), "9.9.9\n");
    writeFileSync(join(paths.sysModule, "vboxdrv", "version"), "6.1.0\n");
    expect(reader.read().map((m) => m.version)).toEqual(["7.0.14", "1.0.0"]);
    // Unloaded and loaded again between two polls: a new directory, so its version is read.
    reloadModule(paths.sysModule, "vboxdrv", "7.1.0");
    expect(reader.read()).toEqual([
      { name: "vboxdrv", version: "7.1.0" },
      { name: "virtio_net", version: "1.0.0" },
    ]);
  });

  test("a module that goes away leaves the list, and is read afresh when it comes back", () => {
    procModules("vboxdrv");
    sysModule("vboxdrv", "7.0.14");
    const reader = new ModuleReader(paths);
    expect(reader.read()).toEqual([{ name: "vboxdrv", version: "7.0.14" }]);
    procModules();
    rmSync(join(paths.sysModule, "vboxdrv"), { recursive: true });
    expect(reader.read()).toEqual([]);
    procModules("vboxdrv");
    sysModule("vboxdrv", "7.2.0");
    expect(reader.read()).toEqual([{ name: "vboxdrv", version: "7.2.0" }]);
  });

  test("no /proc/modules (a kernel without loadable modules): the built-ins only", () => {
    sysModule("virtio_net", "1.0.0");
    expect(new ModuleReader(paths).read()).toEqual([{ name: "virtio_net", version: "1.0.0" }]);
  });
});
