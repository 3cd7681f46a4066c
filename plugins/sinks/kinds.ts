/**
 * The sink kinds built into this agent, registered by type name. Adding a
 * store is one Destination file and one line here.
 */
import { ClickHouseDestination, ClickHouseSinkSchema } from "./clickhouse.ts";
import { PostgresDestination, PostgresSinkSchema } from "./postgres.ts";
import { registerSinkKind } from "./registry.ts";
import { SyslogDestination, SyslogSinkSchema } from "./syslog.ts";

registerSinkKind({
  kind: "postgres",
  schema: PostgresSinkSchema,
  destination: (c) => new PostgresDestination(c),
});
registerSinkKind({
  kind: "clickhouse",
  schema: ClickHouseSinkSchema,
  destination: (c) => new ClickHouseDestination(c),
});
registerSinkKind({ kind: "syslog", schema: SyslogSinkSchema, destination: (c) => new SyslogDestination(c) });

export { buildSinks, sinkKinds } from "./registry.ts";
