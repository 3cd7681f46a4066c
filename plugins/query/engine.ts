/**
 * One interface for the two query back ends (osquery's registry style: the
 * scheduler asks for "an engine", a deployment picks which): `embedded`
 * answers from osquery-compatible tables built from the live system,
 * `osqueryd` forwards to a real osqueryd over its extension socket. Results
 * are osquery's: every value a string, NULL as "".
 */
import { HandlerError } from "../../core/errors.ts";

export type EngineKind = "embedded" | "osqueryd";
export type ResultRow = Record<string, string>;

export interface QueryResult {
  columns: string[];
  rows: ResultRow[];
  /** Non-fatal notes (e.g. a `file` query without a path constraint). */
  warnings: string[];
}

export interface QueryEngine {
  readonly kind: EngineKind;
  /** The tables this engine answers; pack queries on others are reported, not run. */
  tables(): Promise<string[]>;
  query(sql: string): Promise<QueryResult>;
  close(): Promise<void>;
}

export interface EngineSettings {
  engine: EngineKind;
  /** osqueryd's extension socket (osqueryd --extensions_socket). */
  osquerySocket: string;
  /** Per-call timeout towards osqueryd. */
  osqueryTimeoutMs: number;
}

export const DEFAULT_ENGINE_SETTINGS: EngineSettings = {
  engine: "embedded",
  osquerySocket: "/var/osquery/osquery.em",
  osqueryTimeoutMs: 30_000,
};

/** Error codes a query can fail with; the watchdog adds HND_QUERY_WATCHDOG and HND_QUERY_WORKER. */
export function queryError(
  code:
    | "HND_QUERY_REFUSED"
    | "HND_QUERY_SQL"
    | "HND_QUERY_UNKNOWN_TABLE"
    | "HND_QUERY_UNKNOWN_FUNCTION"
    | "HND_QUERY_OSQUERYD"
    | "HND_QUERY_OSQUERYD_UNAVAILABLE",
  message: string,
  details?: Record<string, unknown>,
): HandlerError {
  return new HandlerError(code, message, details ? { details } : {});
}

/**
 * `introspection`: what the engine's host knows about itself (osquery_info,
 * osquery_schedule); the embedded engine asks it when a query reads them.
 */
export async function createEngine(
  settings: EngineSettings,
  introspection?: () => import("./tables/context.ts").Introspection,
): Promise<QueryEngine> {
  if (settings.engine === "osqueryd") {
    const { OsquerydEngine } = await import("./osqueryd.ts");
    return new OsquerydEngine(settings.osquerySocket, { timeoutMs: settings.osqueryTimeoutMs });
  }
  const { EmbeddedEngine } = await import("./embedded.ts");
  return new EmbeddedEngine(introspection ? { introspection } : {});
}
