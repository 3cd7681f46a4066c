/**
 * The contract every handler host keeps (core/host/manager.ts runs host
 * groups in sandboxed processes, core/host/in-process.ts runs handlers
 * inside the agent). It lives beside the handler contract so the update
 * client, the agent and the hosts depend on it without depending on each
 * other: core/host implements it, nothing in core/handler imports core/host
 * values.
 */
import type { CrashInfo, HostStatus } from "../agent/api.ts";
import type { ContentView } from "./contract.ts";

export type HandlerState = "loaded" | "not-installed" | "failed" | "unloaded" | "crash-looping";

export interface Prepared {
  readonly type: string;
  readonly version: number;
  readonly live: unknown;
}

export interface HandlerHostInfo {
  group: string;
  /** The process the group shares with others (groups.ts `process`); absent when it has its own. */
  process?: string;
  isolation: "process" | "in-process";
  pid: number | null;
  hostState: HostStatus["state"];
  restarts: number;
  lastCrash: CrashInfo | null;
}

export interface HandlerSlotState {
  state: HandlerState;
  version: number | null;
  status?: Record<string, unknown>;
  error?: { code: string; message: string };
  host?: HandlerHostInfo;
}

export interface HandlerHost {
  validate(type: string, view: ContentView): Promise<void>;
  /** Loads content beside whatever is live; the live object is untouched. */
  prepare(type: string, view: ContentView): Promise<Prepared>;
  /**
   * Makes prepared content live and releases the previous one. Call only
   * after the store committed. `activatedAt` (ms) is when that content became
   * current — now, unless it is installed content loaded again at start-up;
   * crash-loop rollback only blames recently activated content.
   */
  commit(prepared: Prepared, opts?: { activatedAt?: number }): Promise<void>;
  /** Drops prepared content that will not go live (validation or commit failed). */
  discard(prepared: Prepared): Promise<void>;
  markFailed(type: string, error: unknown): void;
  unloadAll(): Promise<void>;
  state(type: string): HandlerSlotState;
  call(type: string, method: string, args: unknown, opts?: { signal?: AbortSignal }): Promise<unknown>;
  /** Per host group: isolation, enforcement layers, limits, usage, restarts. */
  hosts(): HostStatus[];
  /**
   * Starts the processes that will host these types now, without waiting, so that they boot while
   * the caller reads and checks the content it then loads into them (start-up, `agent scan`).
   * Optional: a host without processes has nothing to start.
   */
  prestart?(types: readonly string[]): void;
}
