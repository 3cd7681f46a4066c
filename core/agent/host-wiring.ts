/**
 * The handler host the agent runs its content in: every group in its own
 * sandboxed process (HostManager, the default), or all in this process
 * (`hosts.isolation: "in-process"`, for tests and debugging). A host group
 * that crash-loops with no recent content to blame is an alert.
 */
import { join } from "node:path";
import type { ContentView } from "../handler/contract.ts";
import type { HandlerHost } from "../handler/host-contract.ts";
import type { HealthBoard } from "../health/reasons.ts";
import { InProcessHost } from "../host/in-process.ts";
import { type ContentFailure, defaultInstallDir, HostManager } from "../host/manager.ts";
import type { Logger } from "../log.ts";
import type { Alert } from "./alerts.ts";
import type { AgentOptions } from "./runtime.ts";

export function createHost(
  opts: AgentOptions,
  d: {
    log: Logger;
    health: HealthBoard;
    now: () => number;
    emit(type: string, fields?: Record<string, unknown>): void;
    agentCall(method: string, args?: unknown): Promise<unknown>;
    onContentFailure(f: ContentFailure): Promise<ContentView | null>;
    alert(a: Omit<Alert, "at" | "host" | "agentVersion" | "group">): void;
    /** The directory holding group work dirs: STATE/hosts, or a read-only view's own. */
    workRoot(): string;
  },
): HandlerHost {
  const { config } = opts;
  if (config.hosts.isolation === "in-process") {
    return new InProcessHost(opts.registry, d.log, {
      workDirFor: (group) => join(d.workRoot(), group),
      emit: d.emit,
      agentCall: d.agentCall,
      pathVars: { stateDir: config.stateDir, installDir: defaultInstallDir() },
    });
  }
  return new HostManager({
    registry: opts.registry,
    log: d.log,
    config: config.hosts,
    stateDir: config.stateDir,
    workRoot: d.workRoot,
    emit: (type, fields) => d.emit(type, fields),
    agentCall: d.agentCall,
    onContentFailure: d.onContentFailure,
    onCrashLoop: (e) =>
      d.alert({
        kind: "handler-failed",
        code: "HND_HOST_CRASH_LOOP",
        reason: `host ${e.group} crashed ${e.crashes} times in ${config.hosts.crashLoop.windowSeconds} s with no recent content to blame (last: ${e.detail})`,
      }),
    command: opts.hosts?.command,
    health: d.health,
    now: d.now,
  });
}
