/**
 * ScheduledQueryPack's manifest on its own: what the supervisor needs to
 * know about the handler (group, privileges, limits) without evaluating its
 * code (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";

/** The longest wall-clock limit a query may be given (settings and per-pack overrides alike). */
export const MAX_WALL_SECONDS = 86400;

export const scheduledQueryPackManifest: HandlerManifestInput = {
  name: "ScheduledQueryPack",
  description: "osquery-compatible scheduled query packs with a watchdog; results in osquery log format",
  group: "query",
  privileges: {
    runAs: "root",
    fs: { mode: "read-only", paths: ["/**"] },
    net: "none",
    exec: true,
    hostView: true,
  },
  limits: { memoryMb: 1024, cpuSeconds: 86400 },
  maxPackageBytes: 16 * 1024 * 1024,
  // `run` and `query` wait for a query the watchdog bounds by its wall limit, queued behind at most
  // one other (one query at a time per worker): the IPC call must not give up first.
  callTimeoutSeconds: { run: 2 * MAX_WALL_SECONDS + 60, query: 2 * MAX_WALL_SECONDS + 60 },
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(scheduledQueryPackManifest);
}
