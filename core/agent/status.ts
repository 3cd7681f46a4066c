/**
 * What `agent status` and GET /v1/status report, built from the agent's
 * parts: content and handler state per type, host processes, the update
 * loop, and the health verdict with every reason — handlers, hosts, trust,
 * update failures and whatever features raised on the health board
 * (core/health/reasons.ts). Pure: the agent passes in what it holds.
 */
import type { AgentConfig } from "../config.ts";
import type { HandlerHost } from "../handler/host-contract.ts";
import type { HealthBoard } from "../health/reasons.ts";
import type { ContentStore } from "../store/store.ts";
import type { UpdateMemory } from "../update/memory.ts";
import { COMMIT, VERSION } from "../version.ts";
import type { AgentStatus, ContentInfo, Health, HostStatus, UpdateCycleReport } from "./api.ts";
import { policyStatus } from "./policy.ts";

export interface StatusInput {
  config: AgentConfig;
  content: ContentInfo[];
  hosts: HostStatus[];
  board: ReturnType<HealthBoard["list"]>;
  memory: UpdateMemory | undefined;
  lastReport: UpdateCycleReport | undefined;
  trustProblem: string | undefined;
  /** The agent's clock (injectable in tests). */
  now: Date;
  startedAt: Date;
  nextRunAt: number | null;
}

export function contentInfoOf(store: ContentStore, host: HandlerHost, type: string): ContentInfo {
  let installed: ReturnType<ContentStore["installed"]>;
  let lkg: ReturnType<ContentStore["lkg"]>;
  try {
    installed = store.installed(type);
  } catch {
    installed = null;
  }
  try {
    lkg = store.lkg(type);
  } catch {
    lkg = null;
  }
  const h = host.state(type);
  return {
    type,
    version: installed?.version ?? null,
    signingTime: installed?.signingTime ?? null,
    sha384: installed?.sha384 ?? null,
    installedAt: installed?.installedAt ?? null,
    lkgVersion: lkg?.version ?? null,
    handlerState: h.state,
    ...(h.status ? { handlerStatus: h.status } : {}),
    ...(h.error ? { handlerError: h.error } : {}),
    badVersions: store.badVersions(type).map((b) => b.version),
    ...(h.host ? { host: h.host } : {}),
  };
}

export function buildStatus(i: StatusInput): AgentStatus {
  const { config, content, hosts, board, now } = i;
  const reasons: string[] = [];
  let health: Health = "green";
  const worsen = (h: Health, reason: string) => {
    reasons.push(reason);
    if (h === "red" || (h === "amber" && health === "green")) health = h;
  };
  for (const c of content) {
    if (c.handlerState === "failed") worsen("red", `${c.type}: handler failed to load content`);
    if (c.handlerState === "crash-looping") worsen("red", `${c.type}: its host process is crash-looping`);
  }
  const crashedProcesses = new Set<string>();
  for (const h of hosts) {
    // Groups that share a process (docs/handler-host.md, G3) share its crashes: one reason per process.
    const proc = h.process ?? h.group;
    if (h.crashesInWindow > 0 && h.state !== "crash-looping" && !crashedProcesses.has(proc)) {
      crashedProcesses.add(proc);
      worsen(
        "amber",
        `host ${proc} crashed ${h.crashesInWindow} time(s) in the last ${config.hosts.crashLoop.windowSeconds} s (last: ${h.lastCrash?.detail ?? "?"})`,
      );
    }
  }
  if (i.trustProblem) worsen("red", `trust store: ${i.trustProblem}`);
  const m = i.memory?.data;
  if (m && m.consecutiveFailures >= 3)
    worsen("red", `${m.consecutiveFailures} update cycles failed in a row`);
  else if (i.lastReport && !i.lastReport.ok) worsen("amber", "last update cycle rejected content");
  if (m?.lastSuccess && now.getTime() - Date.parse(m.lastSuccess) > 24 * 3600 * 1000) {
    worsen("amber", `no successful update since ${m.lastSuccess}`);
  }
  for (const r of board) if (r.level !== "info") worsen(r.level, `${r.source}: ${r.message} (${r.code})`);
  const memory = i.memory?.data;
  return {
    agent: {
      version: VERSION,
      commit: COMMIT,
      pid: process.pid,
      startedAt: i.startedAt.toISOString(),
      uptimeSeconds: Math.round((Date.now() - i.startedAt.getTime()) / 1000),
    },
    health,
    healthReasons: reasons,
    healthDetails: board,
    update: {
      repo: config.update.repo,
      group: config.update.group,
      lastAttempt: memory?.lastAttempt ?? null,
      lastSuccess: memory?.lastSuccess ?? null,
      nextRun: i.nextRunAt ? new Date(i.nextRunAt).toISOString() : null,
      lastSerial: memory?.groups[config.update.group]?.lastSerial ?? null,
      consecutiveFailures: memory?.consecutiveFailures ?? 0,
    },
    content,
    lastErrors: [...(memory?.recentRejections ?? [])].reverse(),
    hosts,
    policy: policyStatus(config, i.memory, content),
  };
}
