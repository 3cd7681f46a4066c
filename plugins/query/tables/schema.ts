/**
 * osquery-compatible table schemas for Linux: the column names, order and
 * SQL types of osquery's `specs/*.table` (base schema plus the Linux
 * `extended_schema`, hidden columns left out), so pack queries written for
 * osquery see the same columns here. Source: github.com/osquery/osquery
 * specs/ (Apache-2.0 / GPL-2.0); only the names and types are reproduced.
 */
export type ColumnType = "TEXT" | "INTEGER" | "BIGINT" | "DOUBLE";

export interface TableSchema {
  name: string;
  description: string;
  columns: readonly (readonly [string, ColumnType])[];
  /** osquery "required" columns: the table is empty unless the query constrains one of them. */
  required?: readonly string[];
}

export const T = "TEXT" as const;
export const I = "INTEGER" as const;
export const B = "BIGINT" as const;

export function table(
  name: string,
  description: string,
  columns: [string, ColumnType][],
  required?: string[],
): TableSchema {
  return { name, description, columns, ...(required ? { required } : {}) };
}

/** The first tables; the others are declared beside their generators (see index.ts). */
export const BASE_SCHEMAS: Record<string, TableSchema> = Object.fromEntries(
  [
    table("processes", "All running processes on the host system.", [
      ["pid", B],
      ["name", T],
      ["path", T],
      ["cmdline", T],
      ["state", T],
      ["cwd", T],
      ["root", T],
      ["uid", B],
      ["gid", B],
      ["euid", B],
      ["egid", B],
      ["suid", B],
      ["sgid", B],
      ["on_disk", I],
      ["wired_size", B],
      ["resident_size", B],
      ["total_size", B],
      ["user_time", B],
      ["system_time", B],
      ["disk_bytes_read", B],
      ["disk_bytes_written", B],
      ["start_time", B],
      ["parent", B],
      ["pgroup", B],
      ["threads", I],
      ["nice", I],
      ["cgroup_path", T],
    ]),
    table("process_open_sockets", "Processes which have open network sockets on the system.", [
      ["pid", I],
      ["fd", B],
      ["socket", B],
      ["family", I],
      ["protocol", I],
      ["local_address", T],
      ["remote_address", T],
      ["local_port", I],
      ["remote_port", I],
      ["path", T],
      ["state", T],
      ["net_namespace", T],
    ]),
    table("listening_ports", "Processes with listening (bound) network sockets/ports.", [
      ["pid", I],
      ["port", I],
      ["protocol", I],
      ["family", I],
      ["address", T],
      ["fd", B],
      ["socket", B],
      ["path", T],
      ["net_namespace", T],
    ]),
    table("users", "Local user accounts.", [
      ["uid", B],
      ["gid", B],
      ["uid_signed", B],
      ["gid_signed", B],
      ["username", T],
      ["description", T],
      ["directory", T],
      ["shell", T],
      ["uuid", T],
    ]),
    table("groups", "Local system groups.", [
      ["gid", B],
      ["gid_signed", B],
      ["groupname", T],
    ]),
    table("logged_in_users", "Users with an active shell on the system.", [
      ["type", T],
      ["user", T],
      ["tty", T],
      ["host", T],
      ["time", B],
      ["pid", I],
    ]),
    table("os_version", "A single row containing the operating system name and version.", [
      ["name", T],
      ["version", T],
      ["major", I],
      ["minor", I],
      ["patch", I],
      ["build", T],
      ["platform", T],
      ["platform_like", T],
      ["codename", T],
      ["arch", T],
    ]),
    table("kernel_info", "Basic active kernel information.", [
      ["version", T],
      ["arguments", T],
      ["path", T],
      ["device", T],
    ]),
    table("system_info", "System information for identification.", [
      ["hostname", T],
      ["uuid", T],
      ["cpu_type", T],
      ["cpu_subtype", T],
      ["cpu_brand", T],
      ["cpu_physical_cores", I],
      ["cpu_logical_cores", I],
      ["cpu_sockets", I],
      ["cpu_microcode", T],
      ["physical_memory", B],
      ["hardware_vendor", T],
      ["hardware_model", T],
      ["hardware_version", T],
      ["hardware_serial", T],
      ["board_vendor", T],
      ["board_model", T],
      ["board_version", T],
      ["board_serial", T],
      ["computer_name", T],
      ["local_hostname", T],
    ]),
    table("uptime", "Track time passed since last boot.", [
      ["days", I],
      ["hours", I],
      ["minutes", I],
      ["seconds", I],
      ["total_seconds", B],
    ]),
    table("mounts", "System mounted devices and filesystems (not process specific).", [
      ["device", T],
      ["device_alias", T],
      ["path", T],
      ["type", T],
      ["blocks_size", B],
      ["blocks", B],
      ["blocks_free", B],
      ["blocks_available", B],
      ["inodes", B],
      ["inodes_free", B],
      ["flags", T],
    ]),
    table("interface_addresses", "Network interfaces and relevant metadata.", [
      ["interface", T],
      ["address", T],
      ["mask", T],
      ["broadcast", T],
      ["point_to_point", T],
      ["type", T],
    ]),
    table("routes", "The active route table for the host system.", [
      ["destination", T],
      ["netmask", I],
      ["gateway", T],
      ["source", T],
      ["flags", I],
      ["interface", T],
      ["mtu", I],
      ["metric", I],
      ["type", T],
      ["hopcount", I],
    ]),
    table("crontab", "Line parsed values from system and user cron/tab.", [
      ["event", T],
      ["minute", T],
      ["hour", T],
      ["day_of_month", T],
      ["month", T],
      ["day_of_week", T],
      ["command", T],
      ["path", T],
    ]),
    table("deb_packages", "The installed DEB package database.", [
      ["name", T],
      ["version", T],
      ["source", T],
      ["size", B],
      ["arch", T],
      ["revision", T],
      ["status", T],
      ["maintainer", T],
      ["section", T],
      ["priority", T],
      ["admindir", T],
    ]),
    table(
      "file",
      "Interactive filesystem attributes and metadata.",
      [
        ["path", T],
        ["directory", T],
        ["filename", T],
        ["inode", B],
        ["uid", B],
        ["gid", B],
        ["mode", T],
        ["device", B],
        ["size", B],
        ["block_size", I],
        ["atime", B],
        ["mtime", B],
        ["ctime", B],
        ["btime", B],
        ["hard_links", I],
        ["symlink", I],
        ["type", T],
        ["symlink_target_path", T],
      ],
      ["path", "directory"],
    ),
    table(
      "hash",
      "Filesystem hash data.",
      [
        ["path", T],
        ["directory", T],
        ["md5", T],
        ["sha1", T],
        ["sha256", T],
      ],
      ["path", "directory"],
    ),
  ].map((t) => [t.name, t]),
);

/** `CREATE TABLE` for a schema; osquery's BIGINT and INTEGER both get INTEGER affinity in SQLite. */
export function createTableSql(schema: TableSchema): string {
  const cols = schema.columns.map(([name, type]) => `"${name}" ${type}`).join(", ");
  return `CREATE TABLE "${schema.name}" (${cols})`;
}
