/** The embedded engine's tables, by name, like osquery's table registry. */
import type { Generator } from "./context.ts";
import { genFile, genHash } from "./files.ts";
import { genListeningPorts, genProcesses, genProcessOpenSockets } from "./proc.ts";
import { SCHEMAS } from "./schema.ts";
import {
  genCrontab,
  genDebPackages,
  genGroups,
  genInterfaceAddresses,
  genKernelInfo,
  genLoggedInUsers,
  genMounts,
  genOsVersion,
  genRoutes,
  genSystemInfo,
  genUptime,
  genUsers,
} from "./system.ts";

export type { Cell, GenContext, Generator, Row } from "./context.ts";
export { SCHEMAS, TABLE_NAMES } from "./schema.ts";

export const GENERATORS: Record<string, Generator> = {
  processes: genProcesses,
  process_open_sockets: genProcessOpenSockets,
  listening_ports: genListeningPorts,
  users: genUsers,
  groups: genGroups,
  logged_in_users: genLoggedInUsers,
  os_version: genOsVersion,
  kernel_info: genKernelInfo,
  system_info: genSystemInfo,
  uptime: genUptime,
  mounts: genMounts,
  interface_addresses: genInterfaceAddresses,
  routes: genRoutes,
  crontab: genCrontab,
  deb_packages: genDebPackages,
  file: genFile,
  hash: genHash,
};

// A schema without a generator (or the reverse) is a programming error caught at import.
for (const name of Object.keys(SCHEMAS)) {
  if (!GENERATORS[name]) throw new Error(`table ${name} has a schema but no generator`);
}
