/**
 * The query worker: a child process that owns the query engine and runs
 * one query at a time for its parent (the `query` host). It exists so that
 * a runaway query — SQLite spinning in C code, where no JavaScript
 * interrupt reaches — can be stopped the only reliable way: SIGKILL to a
 * process whose CPU and memory the watchdog can measure on its own. Like
 * osquery's worker under its watcher.
 *
 * The parent talks to it with the hosts' framed channel (core/host/channel.ts)
 * over plain pipes: requests on stdin, answers on a private copy of stdout
 * (fd 1 itself becomes a second stderr, so nothing the engine prints can
 * break the framing). Not Bun's `ipc` channel: with it, an idle parent and
 * an idle worker each woke once a second (issue 21, idle CPU).
 *
 * Methods: `configure` {settings}, `query` {sql, introspection?}, `tables`.
 * The worker announces itself with a `ready` event carrying its pid.
 */
import { writeSync } from "node:fs";
import { describeError, HandlerError, isOutpostError } from "../../core/errors.ts";
import { Channel } from "../../core/host/channel.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../../core/host/frame.ts";
import { IdleGc } from "../../core/host/idle-gc.ts";
import { dup2Fd, dupFd } from "../../core/host/landlock.ts";
import { writeStderr } from "../../core/stdio.ts";
import {
  createEngine,
  DEFAULT_ENGINE_SETTINGS,
  type EngineSettings,
  type QueryEngine,
} from "../../plugins/query/engine.ts";
import type { Introspection } from "../../plugins/query/tables/context.ts";
import { dieWithParent, PARENT_PID_ENV } from "./lifeline.ts";

/** Set by the parent in the worker's environment: the pipes are ours. */
export const WORKER_ENV = "OUTPOST_QUERY_WORKER";
/** The event the worker sends once, when it is ready to serve. */
export const READY_EVENT = "ready";
/** Largest message either side sends or accepts: a query result travels in one. */
export const WORKER_MAX_MESSAGE_BYTES = DEFAULT_MAX_MESSAGE_BYTES;

export type WorkerRequest =
  | { op: "configure"; settings: EngineSettings }
  | { op: "query"; sql: string; introspection?: Introspection }
  | { op: "tables" };

/** Serves requests until the parent closes our stdin. */
export async function runWorker(): Promise<void> {
  if (process.env[WORKER_ENV] !== "1") {
    writeStderr("query worker: no channel to a parent (this command is started by the agent)\n");
    return;
  }
  // Die with the parent even while SQLite spins in C code (see lifeline.ts).
  if (!dieWithParent(Number(process.env[PARENT_PID_ENV]) || undefined)) process.exit(1);
  const out = dupFd(1);
  if (out < 0 || dup2Fd(2, 1) < 0)
    throw new Error("query worker: cannot set up the answer descriptor (dup failed)");

  let settings: EngineSettings = DEFAULT_ENGINE_SETTINGS;
  /** What the parent sent with the current query (the schedule's statistics for osquery_schedule). */
  let introspection: Introspection = {};
  let engine: Promise<QueryEngine> | undefined;
  const getEngine = () => {
    engine ??= createEngine(settings, () => introspection);
    return engine;
  };
  /** One request at a time: the watchdog attributes the worker's CPU and memory to the running query. */
  let chain: Promise<unknown> = Promise.resolve();

  const handle = async (method: string, raw: unknown): Promise<unknown> => {
    const args = (raw ?? {}) as Partial<Omit<Extract<WorkerRequest, { op: "query" }>, "op">> & {
      settings?: EngineSettings;
    };
    switch (method) {
      case "configure": {
        const old = engine;
        settings = args.settings ?? DEFAULT_ENGINE_SETTINGS;
        engine = undefined;
        await (await old)?.close();
        return { engine: settings.engine };
      }
      case "query":
        if (typeof args.sql !== "string") throw new HandlerError("HND_IPC_PROTOCOL", "query: no sql");
        introspection = args.introspection ?? {};
        return (await getEngine()).query(args.sql);
      case "tables":
        return (await getEngine()).tables();
      default:
        throw new HandlerError("HND_NO_METHOD", `${method}: the query worker serves no such request`);
    }
  };

  // Collected and its executable's pages given back once quiet, like a host (core/host/idle-gc.ts): a
  // worker kept by queries every few seconds lives on, and kept the 30+ MiB of code its start mapped.
  const idleGc = new IdleGc();
  const channel = new Channel({
    send: (frame) => {
      let off = 0;
      while (off < frame.length) off += writeSync(out, frame, off);
    },
    maxInbound: WORKER_MAX_MESSAGE_BYTES,
    maxOutbound: WORKER_MAX_MESSAGE_BYTES,
    onRequest: (method, args) => {
      idleGc.touch();
      const run = chain.then(() =>
        handle(method, args).catch((e) => {
          // Engine errors (SQLite's, a table's) reach the caller with the code describeError gives them.
          if (isOutpostError(e)) throw e;
          const d = describeError(e);
          const details = (e as { details?: Record<string, unknown> }).details;
          throw new HandlerError(d.code, d.message, details ? { details } : {});
        }),
      );
      chain = run.catch(() => {});
      return run;
    },
    onProtocolError: (p) => {
      writeStderr(`query worker: protocol error from the query host: ${p.kind}: ${p.message}\n`);
      if (p.fatal) process.exit(75);
    },
  });
  channel.notify({ t: "evt", type: READY_EVENT, f: { pid: process.pid } });
  // The parent (the query host) died or let go when our stdin ends: nothing left to serve.
  for await (const chunk of Bun.stdin.stream()) channel.feed(chunk);
  channel.close(new HandlerError("HND_QUERY_WORKER", "the query host closed the channel"));
}

if (import.meta.main) {
  await runWorker();
  process.exit(0);
}
