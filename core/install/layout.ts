/**
 * Where an installed agent lives. Every path is absolute as the running
 * system sees it; `--root DIR` prefixes them at write time only, so the
 * files written into DIR name `/etc/outpost/…`, never DIR itself.
 *
 * The binary sits in an A/B slot (`/opt/outpost/slot-a/agent`) behind the
 * `/opt/outpost/current` symlink the unit runs, so a software update can
 * switch slots with one atomic rename (docs/install.md, "Layout").
 */
import { join } from "node:path";

export const LAYOUT = {
  optDir: "/opt/outpost",
  slotA: "/opt/outpost/slot-a",
  slotB: "/opt/outpost/slot-b",
  current: "/opt/outpost/current",
  /** What ExecStart runs: the current slot's executable. */
  binary: "/opt/outpost/current/agent",
  etcDir: "/etc/outpost",
  config: "/etc/outpost/agent.json",
  trust: "/etc/outpost/root.pem",
  tenantToken: "/etc/outpost/tenant-token",
  stateDir: "/var/lib/outpost",
  unit: "/etc/systemd/system/outpost.service",
  unitName: "outpost.service",
  /** The system user `runAs: agent` host groups drop to (config hosts.user). */
  user: "outpost",
} as const;

/** A system path as seen from inside `root` ("/" leaves it as is). */
export const inRoot = (root: string, path: string): string => (root === "/" ? path : join(root, path));
