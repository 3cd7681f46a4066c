/**
 * The query worker: a child process that owns the query engine and runs
 * one query at a time for its parent (the `query` host), over Bun's IPC
 * channel. It exists so that a runaway query — SQLite spinning in C code,
 * where no JavaScript interrupt reaches — can be stopped the only reliable
 * way: SIGKILL to a process whose CPU and memory the watchdog can measure
 * on its own. Like osquery's worker under its watcher.
 *
 * Protocol (JSON): parent → `{id, op: "configure"|"query"|"tables", …}`;
 * worker → `{op: "ready", pid}` once, then `{id, ok, result | error}`.
 */
import { describeError } from "../../core/errors.ts";
import { writeStderr } from "../../core/stdio.ts";
import {
  createEngine,
  DEFAULT_ENGINE_SETTINGS,
  type EngineSettings,
  type QueryEngine,
} from "../../plugins/query/engine.ts";
import type { Introspection } from "../../plugins/query/tables/context.ts";
import { dieWithParent, PARENT_PID_ENV } from "./lifeline.ts";

export type WorkerRequest =
  | { id: number; op: "configure"; settings: EngineSettings }
  | { id: number; op: "query"; sql: string; introspection?: Introspection }
  | { id: number; op: "tables" };

export type WorkerResponse =
  | { op: "ready"; pid: number }
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { code: string; message: string; details?: Record<string, unknown> } };

/** Serves requests until the parent goes away. Resolves when the IPC channel closes. */
export function runWorker(): Promise<void> {
  const send = process.send?.bind(process);
  if (!send) {
    writeStderr("query worker: no IPC channel (this command is started by the agent)\n");
    return Promise.resolve();
  }
  // Die with the parent even while SQLite spins in C code (see lifeline.ts).
  if (!dieWithParent(Number(process.env[PARENT_PID_ENV]) || undefined)) process.exit(1);
  let settings: EngineSettings = DEFAULT_ENGINE_SETTINGS;
  /** What the parent sent with the current query (the schedule's statistics for osquery_schedule). */
  let introspection: Introspection = {};
  let engine: Promise<QueryEngine> | undefined;
  const getEngine = () => {
    engine ??= createEngine(settings, () => introspection);
    return engine;
  };
  let chain: Promise<void> = Promise.resolve();

  const handle = async (req: WorkerRequest): Promise<unknown> => {
    switch (req.op) {
      case "configure": {
        const old = engine;
        settings = req.settings;
        engine = undefined;
        await (await old)?.close();
        return { engine: settings.engine };
      }
      case "query":
        introspection = req.introspection ?? {};
        return (await getEngine()).query(req.sql);
      case "tables":
        return (await getEngine()).tables();
    }
  };

  process.on("message", (raw: unknown) => {
    const req = raw as WorkerRequest;
    if (!req || typeof req !== "object" || typeof (req as { id?: unknown }).id !== "number") return;
    chain = chain.then(async () => {
      let res: WorkerResponse;
      try {
        res = { id: req.id, ok: true, result: await handle(req) };
      } catch (e) {
        const d = describeError(e);
        const details = (e as { details?: Record<string, unknown> }).details;
        res = {
          id: req.id,
          ok: false,
          error: { code: d.code, message: d.message, ...(details ? { details } : {}) },
        };
      }
      send(res);
    });
  });
  return new Promise<void>((resolve) => {
    // The parent (the query host) died or let go: nothing left to serve.
    process.on("disconnect", () => resolve());
    send({ op: "ready", pid: process.pid } satisfies WorkerResponse);
  });
}

if (import.meta.main) {
  await runWorker();
  process.exit(0);
}
