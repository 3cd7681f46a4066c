/** The embedded engine's tables, by name, like osquery's table registry. */
import { ACCOUNT_TABLES } from "./accounts.ts";
import { BROWSER_TABLES } from "./browsers.ts";
import type { Generator, TableDef } from "./context.ts";
import { DOCKER_TABLES } from "./docker.ts";
import { genFile, genHash } from "./files.ts";
import { FIRMWARE_TABLES } from "./firmware.ts";
import { HARDWARE_TABLES } from "./hardware.ts";
import { genInterfaceAddresses } from "./interfaces.ts";
import { KERNEL_TABLES } from "./kernel.ts";
import { NETWORK_TABLES } from "./network.ts";
import { OSQUERY_TABLES } from "./osquery.ts";
import { PACKAGE_TABLES } from "./packages.ts";
import { genListeningPorts, genProcesses, genProcessOpenSockets } from "./proc.ts";
import { PROCESS_EXTRA_TABLES } from "./process-extra.ts";
import { BASE_SCHEMAS, type TableSchema } from "./schema.ts";
import { STORAGE_TABLES } from "./storage.ts";
import {
  genCrontab,
  genDebPackages,
  genGroups,
  genKernelInfo,
  genLoggedInUsers,
  genMounts,
  genOsVersion,
  genRoutes,
  genSystemInfo,
  genUptime,
  genUsers,
} from "./system.ts";
import { SYSTEMD_TABLES } from "./systemd.ts";

export type { Cell, GenContext, Generator, Introspection, Row, TableDef } from "./context.ts";

const BASE_GENERATORS: Record<string, Generator> = {
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

/** Tables declared beside their generators, one file per area. */
const DEFS: TableDef[] = [
  ...PROCESS_EXTRA_TABLES,
  ...KERNEL_TABLES,
  ...NETWORK_TABLES,
  ...ACCOUNT_TABLES,
  ...STORAGE_TABLES,
  ...HARDWARE_TABLES,
  ...FIRMWARE_TABLES,
  ...PACKAGE_TABLES,
  ...BROWSER_TABLES,
  ...OSQUERY_TABLES,
  ...DOCKER_TABLES,
  ...SYSTEMD_TABLES,
];

export const SCHEMAS: Record<string, TableSchema> = { ...BASE_SCHEMAS };
export const GENERATORS: Record<string, Generator> = { ...BASE_GENERATORS };
for (const d of DEFS) {
  if (SCHEMAS[d.schema.name]) throw new Error(`table ${d.schema.name} is declared twice`);
  SCHEMAS[d.schema.name] = d.schema;
  GENERATORS[d.schema.name] = d.gen;
}

export const TABLE_NAMES: readonly string[] = Object.keys(SCHEMAS).sort();

// A schema without a generator (or the reverse) is a programming error caught at import.
for (const name of Object.keys(SCHEMAS)) {
  if (!GENERATORS[name]) throw new Error(`table ${name} has a schema but no generator`);
}
for (const name of Object.keys(GENERATORS)) {
  if (!SCHEMAS[name]) throw new Error(`table ${name} has a generator but no schema`);
}
