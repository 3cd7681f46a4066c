/**
 * The agent's façade, shared by the control plane (HTTP), the CLI's offline
 * mode and tests. Everything here is JSON-serialisable: it is also the shape
 * of the `--json` output documented in docs/cli.md.
 */
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
  handlerState: "loaded" | "not-installed" | "failed" | "unloaded";
  handlerStatus?: Record<string, unknown>;
  handlerError?: { code: string; message: string };
  badVersions: number[];
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
}

export interface AgentApi {
  status(): AgentStatus;
  content(): ContentInfo[];
  update(): Promise<UpdateCycleReport>;
  rollback(type: string): Promise<ContentInfo>;
  /** Calls a handler's API (e.g. Hmpa_data "check"). */
  call(type: string, method: string, args: unknown): Promise<unknown>;
}
