/**
 * What the parts of the process host share: the manager's options, its
 * per-type and per-group records, and the context each part (supervision,
 * routing, status) gets from the manager instead of reaching into it.
 */

import type { CrashInfo, HostStatus } from "../agent/api.ts";
import type { AgentConfig } from "../config.ts";
import type { HandlerError } from "../errors.ts";
import type { ContentView, HandlerManifest } from "../handler/contract.ts";
import type { HandlerState } from "../handler/host-contract.ts";
import type { HandlerRegistry } from "../handler/registry.ts";
import type { Logger } from "../log.ts";
import type { HostHealth } from "./health-report.ts";
import type { GroupPolicy } from "./policy.ts";
import type { HostProcess } from "./process.ts";
import type { InitResult } from "./protocol.ts";
import type { Launch } from "./sandbox.ts";

export type HostsConfig = AgentConfig["hosts"];

export interface ContentFailure {
  type: string;
  group: string;
  version: number;
  reason: "crash-loop" | "reload-failed";
  code: string;
  detail: string;
}

export interface HostManagerOptions {
  registry: HandlerRegistry;
  log: Logger;
  config: HostsConfig;
  stateDir: string;
  /** Where group work dirs go (default STATE/hosts; a read-only view has its own, core/agent/read-only-view.ts). */
  workRoot?(): string;
  emit(type: string, fields: Record<string, unknown>): void;
  agentCall?(method: string, args?: unknown): Promise<unknown>;
  /**
   * Content of `type` broke its host (S3, S4). Returns the content to load
   * instead (last-known-good), or null to leave the handler without content.
   */
  onContentFailure(f: ContentFailure): Promise<ContentView | null>;
  /** A crash loop nothing could be blamed on (S3); the agent raises an alert. */
  onCrashLoop?(e: { group: string; crashes: number; detail: string }): void;
  /** The agent's health board, for sandbox problems the administrator must fix (health-report.ts). */
  health?: HostHealth;
  /** Replaces the host command (tests: a misbehaving child). Wrappers are still applied. */
  command?(group: string, limits: { maxInbound: number; maxOutbound: number }): string[];
  now?(): number;
}

export interface Desired {
  view: ContentView;
  version: number;
  /** When this content became current; 0 for content restored as known-good (never blamed). */
  activatedAt: number;
}

export interface TypeSlot {
  type: string;
  manifest: HandlerManifest;
  /** The handler's group: its policy and documentation unit. */
  group: string;
  /** The host process it runs in (GroupRec.name): its group's, or one the group shares (G3). */
  host: string;
  refused?: HandlerError;
  desired?: Desired;
  state: HandlerState;
  version: number | null;
  status?: Record<string, unknown>;
  error?: { code: string; message: string };
}

/**
 * One host process and its supervision record. Named after its group, or
 * after the `process` several groups with identical allowances share (G3,
 * policy.ts): then `groups` lists them, and a crash of the process is a
 * crash of all of them.
 */
export interface GroupRec {
  name: string;
  /** The groups whose handlers run here (one, unless they share the process). */
  groups: string[];
  policy?: GroupPolicy;
  types: string[];
  proc?: HostProcess;
  ready?: Promise<HostProcess>;
  /**
   * A start begun ahead of the content it is for (HostManager.prestart). The first request that
   * needs the process waits for it, and its failure is that request's answer.
   */
  prestarted?: Promise<HostProcess>;
  epoch: number;
  state: HostStatus["state"];
  /** type → version staged and validated in the current process. */
  staged: Map<string, number>;
  crashTimes: number[];
  restarts: number;
  lastCrash: CrashInfo | null;
  backoffMs: number;
  restartTimer?: ReturnType<typeof setTimeout>;
  launch?: Launch;
  init?: InitResult;
  limits: { memoryBytes: number; cpuSeconds: number };
  startedAt: number | null;
  ops: Map<number, { what: string; candidate: boolean }>;
  waiters: Set<() => void>;
  loopReported: boolean;
  cgroupDir?: string;
  cgroupNote?: string;
  tokens: number;
  tokensAt: number;
}

export interface PreparedToken {
  epoch: number;
  preparedId: number;
  view: ContentView;
}

/** The manager's tables and the few actions its parts may take, handed to each part. */
export interface ManagerContext {
  readonly opts: HostManagerOptions;
  readonly slots: Map<string, TypeSlot>;
  readonly groups: Map<string, GroupRec>;
  now(): number;
  /** True once unloadAll began: nothing restarts any more. */
  stopping(): boolean;
  setState(g: GroupRec, state: HostStatus["state"]): void;
  start(g: GroupRec): Promise<HostProcess>;
}

/** A group's record before its first process, with the limits of no handler yet. */
export function newGroupRec(name: string, policy: GroupPolicy | undefined, config: HostsConfig): GroupRec {
  return {
    name,
    groups: [],
    policy,
    types: [],
    epoch: 0,
    state: "stopped",
    staged: new Map(),
    crashTimes: [],
    restarts: 0,
    lastCrash: null,
    backoffMs: config.restartBackoffMs,
    limits: { memoryBytes: config.runtimeMemoryMb * 1024 * 1024, cpuSeconds: 0 },
    startedAt: null,
    ops: new Map(),
    waiters: new Set(),
    loopReported: false,
    tokens: config.eventsPerSecond,
    tokensAt: 0,
  };
}
