/** What a table generator gets: which columns matter, constraints, and where the system lives. */
export type Cell = string | number | bigint | null;
export type Row = Record<string, Cell>;

export interface GenContext {
  /** True when the query names the column (or selects `*`); expensive columns are skipped otherwise. */
  wants(column: string): boolean;
  /** Resolved `path` constraints (file, hash): exact paths. */
  paths: readonly string[];
  /** Resolved `directory` constraints (file, hash). */
  directories: readonly string[];
  /** `path LIKE` patterns (file, hash): `%` one level, `%%` any depth, `_` one character. */
  likes: readonly string[];
  /**
   * `processes` only: the pids a query needs rows for (`WHERE pid = N`, osquery's index column;
   * plugins/query/pid-constraint.ts), when producing only those cannot change its result. Absent: all.
   */
  pids?: readonly number[];
  /** A note for the caller (shown with the results and in status); never fatal. */
  warn(message: string): void;
  /** Prefix for system files (/proc, /etc, /var/…); "" on a live system, a fixture tree in tests. */
  root: string;
  /** What the engine's host knows about itself (osquery_info overrides, osquery_schedule rows); absent → defaults / no rows. */
  introspection?: Introspection;
}

export interface Introspection {
  info?: Row;
  schedule?: Row[];
  /** The supervisor's process view, for a host whose sandbox hides other processes' /proc links (proc-source.ts). */
  procView?: import("../../../core/host/proc-view.ts").ProcView;
}

export type Generator = (ctx: GenContext) => Row[];

/** A table declared beside its generator: osquery's schema and how its rows are produced. */
export interface TableDef {
  schema: import("./schema.ts").TableSchema;
  gen: Generator;
}
