/**
 * The agent's façade, shared by the control plane (HTTP), the CLI's offline
 * mode and tests. Everything here is JSON-serialisable: it is also the shape
 * of the `--json` output documented in docs/cli.md.
 */
import type { ExclusionSummary } from "../exclusions/service.ts";
import type { HealthReason } from "../health/reasons.ts";
import type { PolicyStatus } from "./policy.ts";
import type { AckResult } from "./rollback-notices.ts";

export type { AckResult };

export type Health = "green" | "amber" | "red";

export interface RejectionRecord {
  at: string;
  type?: string;
  file: string;
  code: string;
  reason: string;
}

export interface ContentInfo {
  type: string;
  /** Installed (active) version, or null when nothing is installed. */
  version: number | null;
  signingTime: string | null;
  sha384: string | null;
  installedAt: string | null;
  /** Last-known-good version kept for rollback. */
  lkgVersion: number | null;
  /** crash-looping: its host keeps crashing and restarting (docs/handler-host.md). */
  handlerState: "loaded" | "not-installed" | "failed" | "unloaded" | "crash-looping";
  handlerStatus?: Record<string, unknown>;
  handlerError?: { code: string; message: string };
  badVersions: number[];
  /** The host process serving this handler. */
  host?: {
    group: string;
    /** The process the group shares with others (G3); absent when it has its own. */
    process?: string;
    isolation: "process" | "in-process";
    pid: number | null;
    hostState: HostStatus["state"];
    restarts: number;
    lastCrash: CrashInfo | null;
  };
}

/** Why and when a host process ended unexpectedly. */
export interface CrashInfo {
  at: string;
  pid: number;
  /** crashed, memory-limit, cpu-limit, protocol, unresponsive, exited. */
  reason: string;
  detail: string;
  code: number | null;
  signal: string | null;
  /** What the host was doing: "validate TestText v2", "call Hmpa_data.check", "idle", … */
  during: string;
  stderrTail: string[];
}

/** One host group's process, its sandbox and its supervision record (docs/handler-host.md). */
export interface HostStatus {
  group: string;
  /** The process this group shares with other groups (G3, docs/handler-host.md); absent when it has its own. */
  process?: string;
  isolation: "process" | "in-process";
  state: "stopped" | "starting" | "running" | "restarting" | "crash-looping" | "in-process";
  pid: number | null;
  uid: number | null;
  user: string | null;
  handlers: string[];
  restarts: number;
  crashesInWindow: number;
  lastCrash: CrashInfo | null;
  startedAt: string | null;
  /** Which enforcement layers are in force for this host right now. */
  layers: {
    uidDrop: boolean;
    capabilities: boolean;
    netns: boolean;
    landlockFs: boolean;
    landlockNet: boolean;
    landlockScope: boolean;
    rlimits: boolean;
    noNewPrivs: boolean;
    memory: "cgroup" | "watchdog" | "none";
    /** What the host sees of STATE: nothing but its work dir, STATE without the secrets, or all of it. */
    stateView?: "hidden" | "secrets-masked" | "none";
  };
  /** Why a layer is off or weaker than it could be. */
  notes: string[];
  limits: { memoryBytes: number; cpuSeconds: number };
  usage: { rssBytes: number; cpuSeconds: number } | null;
}

export interface UpdateCycleReport {
  startedAt: string;
  finishedAt: string;
  group: string;
  repo: string;
  /** "not-modified" when the index answered 304. */
  index: "updated" | "not-modified" | "failed";
  serial: number | null;
  installed: { type: string; version: number; previousVersion: number | null }[];
  unchanged: string[];
  rejected: RejectionRecord[];
  ok: boolean;
  /** Set when the repository asked us to come back later (HTTP Retry-After). */
  retryAfterSeconds?: number;
}

export interface AgentStatus {
  agent: { version: string; commit: string; pid: number; startedAt: string; uptimeSeconds: number };
  health: Health;
  healthReasons: string[];
  /** Every reason raised on the health board (core/health/reasons.ts), info level included, worst first. */
  healthDetails?: HealthReason[];
  update: {
    repo: string;
    group: string;
    lastAttempt: string | null;
    lastSuccess: string | null;
    nextRun: string | null;
    lastSerial: number | null;
    consecutiveFailures: number;
  };
  content: ContentInfo[];
  lastErrors: RejectionRecord[];
  /** Host processes by group (absent from agents older than the handler host). */
  hosts?: HostStatus[];
  /** Administrator content policy (cadence, pins) and what it targets; see core/agent/policy.ts. */
  policy?: PolicyStatus;
  /** Kernel sensors and on-access scanning (docs/sensors.md), when `agent run` started them. */
  sensors?: Record<string, unknown>;
  /** A/B software slots and the last software update (core/install/software-service.ts). */
  software?: Record<string, unknown>;
  /** Flags, feature gates and what each service following the effective config has in force (docs/policy.md). */
  effective?: Record<string, unknown>;
  /** The exclusions the agent honours, in brief (`agent exclusions` lists them; docs/exclusions.md). */
  exclusions?: ExclusionSummary;
}

export interface AgentApi {
  status(): AgentStatus;
  content(): ContentInfo[];
  update(): Promise<UpdateCycleReport>;
  rollback(type: string): Promise<ContentInfo>;
  /** Acknowledges an automatic rollback of `type` (clears its AMBER health reason). */
  ack(type: string): Promise<AckResult>;
  /** Calls a handler's API (e.g. Hmpa_data "check"). */
  call(type: string, method: string, args: unknown, opts?: { signal?: AbortSignal }): Promise<unknown>;
}
