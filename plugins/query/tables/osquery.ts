/**
 * osquery's introspection tables as the embedded engine can honestly fill
 * them: `time`, `osquery_info` (this engine process, compatible osquery
 * version), `osquery_schedule` (the scheduler's statistics when the caller
 * hands them to the engine; none otherwise) and `osquery_events` (the
 * embedded engine has no event publishers, so it is empty).
 */
import type { GenContext, Row, TableDef } from "./context.ts";
import { B, I, T, table } from "./schema.ts";

/** The osquery release whose pack semantics and table set Outpost follows. */
export const OSQUERY_COMPAT_VERSION = "5.12.0";

const STARTED = Math.floor(Date.now() / 1000);
const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** osquery's `time` in UTC (its columns have been UTC since 4.x). */
export function timeRow(now: Date): Row {
  const pad = (n: number) => String(n).padStart(2, "0");
  const iso = `${now.getUTCFullYear()}-${pad(now.getUTCMonth() + 1)}-${pad(now.getUTCDate())}T${pad(now.getUTCHours())}:${pad(now.getUTCMinutes())}:${pad(now.getUTCSeconds())}Z`;
  const clock = `${pad(now.getUTCHours())}:${pad(now.getUTCMinutes())}:${pad(now.getUTCSeconds())}`;
  return {
    weekday: WEEKDAYS[now.getUTCDay()]!,
    year: now.getUTCFullYear(),
    month: now.getUTCMonth() + 1,
    day: now.getUTCDate(),
    hour: now.getUTCHours(),
    minutes: now.getUTCMinutes(),
    seconds: now.getUTCSeconds(),
    timezone: "UTC",
    local_timezone: Intl.DateTimeFormat().resolvedOptions().timeZone ?? "UTC",
    unix_time: Math.floor(now.getTime() / 1000),
    // asctime() layout, as osquery prints it.
    timestamp: `${WEEKDAYS[now.getUTCDay()]!.slice(0, 3)} ${MONTHS[now.getUTCMonth()]} ${String(now.getUTCDate()).padStart(2, " ")} ${clock} ${now.getUTCFullYear()} UTC`,
    datetime: iso,
    iso_8601: iso,
  };
}

export function genTime(_ctx: GenContext): Row[] {
  return [timeRow(new Date())];
}

export function genOsqueryInfo(ctx: GenContext): Row[] {
  return [
    {
      pid: process.pid,
      uuid: "",
      instance_id: "",
      version: OSQUERY_COMPAT_VERSION,
      config_hash: "",
      config_valid: 1,
      extensions: "inactive",
      build_platform: "linux",
      build_distro: "outpost-embedded",
      start_time: STARTED,
      watcher: process.ppid,
      platform_mask: 9, // osquery's PlatformType: POSIX (1) | LINUX (8)
      ...ctx.introspection?.info,
    },
  ];
}

export function genOsquerySchedule(ctx: GenContext): Row[] {
  return ctx.introspection?.schedule ?? [];
}

export function genOsqueryEvents(_ctx: GenContext): Row[] {
  return [];
}

export const OSQUERY_TABLES: TableDef[] = [
  {
    schema: table("time", "Track current date and time in UTC.", [
      ["weekday", T],
      ["year", I],
      ["month", I],
      ["day", I],
      ["hour", I],
      ["minutes", I],
      ["seconds", I],
      ["timezone", T],
      ["local_timezone", T],
      ["unix_time", I],
      ["timestamp", T],
      ["datetime", T],
      ["iso_8601", T],
    ]),
    gen: genTime,
  },
  {
    schema: table("osquery_info", "Top level information about the running version of osquery.", [
      ["pid", I],
      ["uuid", T],
      ["instance_id", T],
      ["version", T],
      ["config_hash", T],
      ["config_valid", I],
      ["extensions", T],
      ["build_platform", T],
      ["build_distro", T],
      ["start_time", I],
      ["watcher", I],
      ["platform_mask", I],
    ]),
    gen: genOsqueryInfo,
  },
  {
    schema: table(
      "osquery_schedule",
      "Information about the current queries that are scheduled in osquery.",
      [
        ["name", T],
        ["query", T],
        ["interval", I],
        ["executions", B],
        ["last_executed", B],
        ["denylisted", I],
        ["output_size", B],
        ["wall_time", B],
        ["wall_time_ms", B],
        ["last_wall_time_ms", B],
        ["user_time", B],
        ["last_user_time", B],
        ["system_time", B],
        ["last_system_time", B],
        ["average_memory", B],
        ["last_memory", B],
      ],
    ),
    gen: genOsquerySchedule,
  },
  {
    schema: table("osquery_events", "Information about the event publishers and subscribers.", [
      ["name", T],
      ["publisher", T],
      ["type", T],
      ["subscriptions", I],
      ["events", I],
      ["refreshes", I],
      ["active", I],
    ]),
    gen: genOsqueryEvents,
  },
];
