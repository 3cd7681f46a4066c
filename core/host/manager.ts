/**
 * The supervisor side of the handler host: one sandboxed process per host
 * group, behind the same two-phase HandlerHost contract as the in-process
 * host (validate + load beside live → store commit → swap).
 *
 * Supervision (docs/handler-host.md, "Supervision"):
 *  S1 a crashed host is restarted after an exponential backoff and reloads
 *     the content that is current for each of its handlers;
 *  S2 a crash while a candidate is being validated or loaded is blamed on
 *     that candidate (its update is rejected and the version marked bad by
 *     the caller) and does not count toward a crash loop;
 *  S3 `crashLoop.crashes` other crashes within `crashLoop.windowSeconds` is
 *     a crash loop: content activated within that window is rolled back to
 *     last-known-good through `onContentFailure` (the agent marks the
 *     version bad, alerts and emits events); with nothing recent to blame
 *     the host keeps restarting, slower, and its handlers report
 *     crash-looping;
 *  S4 a host that cannot reload content it served before (deterministic
 *     load failure) gets the same rollback, immediately.
 *
 * Calls that arrive while a host restarts wait for it (bounded by their
 * timeout) rather than failing: a restart costs latency, not answers.
 */
import { chmodSync, chownSync, mkdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CrashInfo, HostStatus } from "../agent/api.ts";
import type { AgentConfig } from "../config.ts";
import { describeError, HandlerError } from "../errors.ts";
import type { ContentView, HandlerManifest } from "../handler/contract.ts";
import type { HandlerHost, HandlerSlotState, HandlerState, Prepared } from "../handler/host.ts";
import type { HandlerRegistry } from "../handler/registry.ts";
import type { Logger } from "../log.ts";
import { metrics } from "../metrics.ts";
import type { Notification, ProtocolProblem } from "./channel.ts";
import { type GroupPolicy, type PathVars, privilegeViolation, sandboxFor } from "./policy.ts";
import { type HostExit, HostProcess } from "./process.ts";
import {
  AgentCallArgs,
  CommitResult,
  type InitArgs,
  InitResult,
  PrepareResult,
  parseWire,
  StatusResult,
} from "./protocol.ts";
import {
  buildLaunch,
  type CgroupSupport,
  createHostCgroup,
  detectCgroupV2,
  findTools,
  type HostIdentity,
  type Launch,
  type LaunchTools,
  landlockRules,
  resolveAgentIdentity,
} from "./sandbox.ts";

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
  emit(type: string, fields: Record<string, unknown>): void;
  agentCall?(method: string, args?: unknown): Promise<unknown>;
  /**
   * Content of `type` broke its host (S3, S4). Returns the content to load
   * instead (last-known-good), or null to leave the handler without content.
   */
  onContentFailure(f: ContentFailure): Promise<ContentView | null>;
  /** A crash loop nothing could be blamed on (S3); the agent raises an alert. */
  onCrashLoop?(e: { group: string; crashes: number; detail: string }): void;
  /** Replaces the host command (tests: a misbehaving child). Wrappers are still applied. */
  command?(group: string, limits: { maxInbound: number; maxOutbound: number }): string[];
  now?(): number;
}

const restartsTotal = metrics.counter(
  "outpost_host_restarts_total",
  "Host process restarts after a crash, by group",
);
const crashesTotal = metrics.counter(
  "outpost_host_crashes_total",
  "Host process crashes, by group and reason",
);
const rssBytes = metrics.gauge("outpost_host_rss_bytes", "Resident memory of each host process, by group");
const ipcRequests = metrics.counter(
  "outpost_ipc_requests_total",
  "Requests from the supervisor to host processes, by group, method and result",
);
const ipcSeconds = metrics.histogram(
  "outpost_ipc_request_seconds",
  "Round-trip time of supervisor → host requests, by group and method",
  [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
);
const ipcProtocolErrors = metrics.counter(
  "outpost_ipc_protocol_errors_total",
  "Malformed, oversized or unexpected messages from host processes, by group and kind",
);
const eventsDropped = metrics.counter(
  "outpost_host_events_dropped_total",
  "Events from host processes dropped by the rate limit or as reserved, by group",
);

/** Event types only the supervisor emits; a host (which runs content) may not forge them. */
const RESERVED_EVENTS =
  /^(agent-|update-|content-|host-|crash-loop$|alert$|handler-failed$|detection-suppressed$)/;

interface Desired {
  view: ContentView;
  version: number;
  /** When this content became current; 0 for content restored as known-good (never blamed). */
  activatedAt: number;
}

interface TypeSlot {
  type: string;
  manifest: HandlerManifest;
  group: string;
  refused?: HandlerError;
  desired?: Desired;
  state: HandlerState;
  version: number | null;
  status?: Record<string, unknown>;
  error?: { code: string; message: string };
}

interface GroupRec {
  name: string;
  policy?: GroupPolicy;
  types: string[];
  proc?: HostProcess;
  ready?: Promise<HostProcess>;
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

interface PreparedToken {
  epoch: number;
  preparedId: number;
  view: ContentView;
}

let opSeq = 0;

/** `bun bin/agent.ts host …` from source, `agent host …` from the compiled executable. */
export function defaultHostCommand(
  group: string,
  limits: { maxInbound: number; maxOutbound: number },
): string[] {
  const tail = [
    "host",
    "--group",
    group,
    "--max-inbound",
    String(limits.maxInbound),
    "--max-outbound",
    String(limits.maxOutbound),
  ];
  if (isCompiled()) return [process.execPath, ...tail];
  return [process.execPath, fileURLToPath(new URL("../../bin/agent.ts", import.meta.url)), ...tail];
}

function isCompiled(): boolean {
  return Bun.main.startsWith("/$bunfs/") || import.meta.url.includes("/$bunfs/");
}

export function defaultInstallDir(): string {
  return isCompiled()
    ? dirname(process.execPath)
    : fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");
}

export class HostManager implements HandlerHost {
  private readonly slots = new Map<string, TypeSlot>();
  private readonly groups = new Map<string, GroupRec>();
  private readonly now: () => number;
  private readonly pathVars: PathVars;
  private stopping = false;
  private tools?: LaunchTools;
  private identity?: HostIdentity;
  private cgroup?: CgroupSupport;

  constructor(private readonly opts: HostManagerOptions) {
    this.now = opts.now ?? Date.now;
    this.pathVars = { stateDir: opts.stateDir, installDir: defaultInstallDir() };
    const { registry } = opts;
    for (const type of registry.types()) {
      const manifest = registry.require(type).manifest;
      const policy = registry.group(manifest.group);
      const refused = privilegeViolation(manifest, policy) ?? undefined;
      if (refused) opts.log.error("handler refused: privileges exceed its group", describeError(refused));
      this.slots.set(type, {
        type,
        manifest,
        group: manifest.group,
        refused,
        state: refused ? "failed" : "not-installed",
        version: null,
        error: refused ? describeError(refused) : undefined,
      });
      let g = this.groups.get(manifest.group);
      if (!g) {
        g = {
          name: manifest.group,
          policy,
          types: [],
          epoch: 0,
          state: "stopped",
          staged: new Map(),
          crashTimes: [],
          restarts: 0,
          lastCrash: null,
          backoffMs: opts.config.restartBackoffMs,
          limits: { memoryBytes: opts.config.runtimeMemoryMb * 1024 * 1024, cpuSeconds: 0 },
          startedAt: null,
          ops: new Map(),
          waiters: new Set(),
          loopReported: false,
          tokens: opts.config.eventsPerSecond,
          tokensAt: 0,
        };
        this.groups.set(manifest.group, g);
      }
      if (!refused) {
        g.types.push(type);
        g.limits.memoryBytes += manifest.limits.memoryMb * 1024 * 1024;
        g.limits.cpuSeconds += manifest.limits.cpuSeconds;
      }
    }
  }

  // ------------------------------------------------------------ HandlerHost

  async validate(type: string, view: ContentView): Promise<void> {
    const { g } = this.lookup(type);
    const proc = await this.ready(g, this.opts.config.loadTimeoutSeconds * 1000);
    await this.stage(g, proc, type, view, true);
  }

  async prepare(type: string, view: ContentView): Promise<Prepared> {
    const { g } = this.lookup(type);
    const proc = await this.ready(g, this.opts.config.loadTimeoutSeconds * 1000);
    if (g.staged.get(type) !== view.version) await this.stage(g, proc, type, view, true);
    const epoch = g.epoch;
    const r = parseWire(
      PrepareResult,
      await this.req(
        g,
        proc,
        "prepare",
        { type, version: view.version },
        {
          timeoutMs: this.opts.config.loadTimeoutSeconds * 1000,
          what: `load ${type} v${view.version}`,
          candidate: true,
        },
      ),
      "prepare",
    );
    g.staged.delete(type);
    const token: PreparedToken = { epoch, preparedId: r.preparedId, view };
    return { type, version: view.version, live: token };
  }

  async commit(prepared: Prepared, opts: { activatedAt?: number } = {}): Promise<void> {
    const { slot, g } = this.lookup(prepared.type);
    const token = prepared.live as PreparedToken;
    slot.desired = {
      view: token.view,
      version: prepared.version,
      activatedAt: opts.activatedAt ?? this.now(),
    };
    slot.error = undefined;
    slot.state = "loaded";
    slot.version = prepared.version;
    const proc = g.proc;
    if (!proc?.running || g.state !== "running") {
      // S1: a restart under way loads what is now desired; a stopped host is started for it.
      if (g.state === "stopped" && !this.stopping) void this.start(g).catch(() => {});
      return;
    }
    if (g.epoch === token.epoch) {
      try {
        const r = parseWire(
          CommitResult,
          await this.req(
            g,
            proc,
            "commit",
            { preparedId: token.preparedId },
            {
              timeoutMs: this.opts.config.loadTimeoutSeconds * 1000,
              what: `activate ${prepared.type} v${prepared.version}`,
              candidate: false,
            },
          ),
          "commit",
        );
        slot.status = r.status;
        return;
      } catch (e) {
        if (!proc.running) return;
        // The host lost track of what it prepared: start it over on the desired content.
        proc.kill("protocol", `commit failed: ${describeError(e).message}`);
        return;
      }
    }
    // The host restarted between prepare and commit and reloaded the previous content.
    await this.loadDesired(g, proc, prepared.type);
  }

  async discard(prepared: Prepared): Promise<void> {
    const { g } = this.lookup(prepared.type);
    const token = prepared.live as PreparedToken;
    const proc = g.proc;
    if (!proc?.running || g.epoch !== token.epoch) return;
    try {
      await this.req(
        g,
        proc,
        "discard",
        { preparedId: token.preparedId },
        {
          timeoutMs: this.opts.config.callTimeoutSeconds * 1000,
          what: `discard ${prepared.type} v${prepared.version}`,
          candidate: false,
        },
      );
    } catch {
      // Nothing live depends on it; a dead host dropped it already.
    }
  }

  markFailed(type: string, error: unknown): void {
    const slot = this.slots.get(type);
    if (slot && slot.state !== "loaded") {
      slot.state = "failed";
      slot.error = describeError(error);
    }
  }

  async call(
    type: string,
    method: string,
    args: unknown,
    opts: { signal?: AbortSignal } = {},
  ): Promise<unknown> {
    const { slot, g } = this.lookup(type);
    if (!slot.desired) {
      throw new HandlerError("HND_NOT_LOADED", `${type} has no content loaded (${this.stateOf(slot)})`);
    }
    const timeoutMs = this.opts.config.callTimeoutSeconds * 1000;
    const proc = await this.ready(g, timeoutMs);
    return this.req(
      g,
      proc,
      "call",
      { type, method, args },
      {
        timeoutMs,
        signal: opts.signal,
        what: `call ${type}.${method}`,
        candidate: false,
      },
    );
  }

  async unloadAll(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      [...this.groups.values()].map(async (g) => {
        clearTimeout(g.restartTimer);
        g.restartTimer = undefined;
        const proc = g.proc;
        if (proc) await proc.shutdown(5000);
        g.proc = undefined;
        g.ready = undefined;
        this.setState(g, "stopped");
      }),
    );
    for (const slot of this.slots.values()) {
      if (slot.state === "loaded") slot.state = "unloaded";
    }
  }

  state(type: string): HandlerSlotState {
    const slot = this.slots.get(type);
    if (!slot) throw new HandlerError("HND_UNKNOWN_TYPE", `no handler for content type ${type}`);
    const g = this.groups.get(slot.group)!;
    return {
      state: this.stateOf(slot),
      version: slot.version,
      ...(slot.status && slot.state === "loaded" ? { status: slot.status } : {}),
      ...(slot.error ? { error: slot.error } : {}),
      host: {
        group: g.name,
        isolation: "process",
        pid: g.proc?.running ? g.proc.pid : null,
        hostState: g.state,
        restarts: g.restarts,
        lastCrash: g.lastCrash,
      },
    };
  }

  hosts(): HostStatus[] {
    return [...this.groups.values()].map((g) => {
      // The watchdog samples every watchdogIntervalMs; status (a hot path) reads /proc only before the first sample.
      const sample = g.proc?.running ? (g.proc.lastSample ?? g.proc.sample()) : null;
      const l = g.launch?.layers;
      const ll = g.init?.landlock;
      const notes = [...(g.launch?.notes ?? [])];
      if (ll?.error) notes.push(`landlock: ${ll.error}`);
      if (ll && ll.abi > 0 && ll.abi < 4)
        notes.push(`landlock: ABI ${ll.abi} has no network rules (needs 4)`);
      if (ll?.missing.length) notes.push(`landlock: declared paths absent here: ${ll.missing.join(", ")}`);
      if (g.cgroupNote) notes.push(`memory: ${g.cgroupNote}`);
      const refused = [...this.slots.values()].filter((s) => s.group === g.name && s.refused);
      for (const s of refused) notes.push(`${s.type} refused: ${s.refused!.message}`);
      return {
        group: g.name,
        isolation: "process",
        state: g.state,
        pid: g.proc?.running ? g.proc.pid : null,
        uid: g.init?.uid ?? null,
        user: g.launch?.user ?? null,
        handlers: [...g.types],
        restarts: g.restarts,
        crashesInWindow: this.pruneCrashes(g),
        lastCrash: g.lastCrash,
        startedAt: g.startedAt ? new Date(g.startedAt).toISOString() : null,
        layers: {
          uidDrop: !!l?.uidDrop,
          capabilities: !!l?.capabilities,
          netns: !!l?.netns,
          landlockFs: !!ll?.fs,
          landlockNet: !!ll?.net,
          landlockScope: !!ll?.scoped,
          rlimits: !!l?.rlimits,
          noNewPrivs: !!l?.noNewPrivs || !!ll?.fs,
          memory: g.cgroupDir ? "cgroup" : g.launch ? "watchdog" : "none",
        },
        notes,
        limits: { ...g.limits },
        usage: sample ? { rssBytes: sample.rssBytes, cpuSeconds: sample.cpuSeconds } : null,
      } satisfies HostStatus;
    });
  }

  /** Starts `group`'s host before it has content (pre-warming, benchmarks); resolves when it runs. */
  async warm(group: string): Promise<void> {
    const g = this.groups.get(group);
    if (!g) throw new HandlerError("HND_UNKNOWN_GROUP", `no handlers in host group ${group}`);
    await this.ready(g, this.opts.config.loadTimeoutSeconds * 1000);
  }

  /** Refreshes cached handler status from every running host (status() is synchronous). */
  async refreshStatus(): Promise<void> {
    await Promise.all(
      [...this.groups.values()].map(async (g) => {
        const proc = g.proc;
        if (!proc?.running || g.state !== "running") return;
        try {
          this.applyStatus(
            await this.req(g, proc, "status", null, { timeoutMs: 5000, what: "status", candidate: false }),
          );
        } catch {
          // A host that cannot answer is the watchdogs' business.
        }
      }),
    );
  }

  // ------------------------------------------------------------ internals

  private lookup(type: string): { slot: TypeSlot; g: GroupRec } {
    const slot = this.slots.get(type);
    if (!slot) throw new HandlerError("HND_UNKNOWN_TYPE", `no handler for content type ${type}`);
    if (slot.refused) throw slot.refused;
    return { slot, g: this.groups.get(slot.group)! };
  }

  private stateOf(slot: TypeSlot): HandlerState {
    const g = this.groups.get(slot.group)!;
    // A loop is a loop until the crash window drains, even while a restarted process is briefly up.
    if (
      slot.desired &&
      (g.state === "crash-looping" || this.pruneCrashes(g) >= this.opts.config.crashLoop.crashes)
    ) {
      return "crash-looping";
    }
    return slot.state;
  }

  private setState(g: GroupRec, state: HostStatus["state"]): void {
    g.state = state;
    const waiters = [...g.waiters];
    g.waiters.clear();
    for (const w of waiters) w();
  }

  /** Waits until `g` runs (starting it when stopped), at most `timeoutMs`. */
  private async ready(g: GroupRec, timeoutMs: number): Promise<HostProcess> {
    const deadline = this.now() + timeoutMs;
    for (;;) {
      if (this.stopping) throw new HandlerError("HND_HOST_DOWN", `host ${g.name}: the agent is stopping`);
      if (g.proc?.running && g.state === "running") return g.proc;
      // Nobody is bringing it up: start it, and its failure is the answer (no retry storm).
      if (!g.ready && !g.restartTimer && g.state !== "crash-looping") return await this.start(g);
      const left = deadline - this.now();
      if (left <= 0) {
        throw new HandlerError(
          "HND_HOST_UNAVAILABLE",
          `host ${g.name} is ${g.state}${g.lastCrash ? ` (last crash: ${g.lastCrash.detail})` : ""}; try again`,
          { details: { group: g.name, state: g.state } },
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        g.waiters.add(done);
        g.ready?.then(done, done);
      });
    }
  }

  private start(g: GroupRec): Promise<HostProcess> {
    if (g.ready) return g.ready;
    this.setState(g, g.restarts > 0 || g.lastCrash ? "restarting" : "starting");
    const epochBefore = g.epoch;
    const ready = (async () => {
      const proc = await this.launch(g);
      try {
        await this.reload(g, proc);
      } catch (e) {
        if (proc.running) proc.kill("protocol", `reload failed: ${describeError(e).message}`);
        throw e;
      }
      if (g.proc !== proc || !proc.running) {
        throw new HandlerError("HND_HOST_CRASHED", `host ${g.name} exited while starting`);
      }
      this.setState(g, "running");
      return proc;
    })();
    g.ready = ready;
    ready.catch((e) => {
      if (g.ready === ready) g.ready = undefined;
      // No process ever ran (spawn or set-up failed): supervise it like a crash. A process that ran
      // reported its own exit already.
      if (g.epoch === epochBefore && !this.stopping && g.state !== "stopped") {
        this.recordCrash(g, {
          at: new Date(this.now()).toISOString(),
          pid: 0,
          reason: "spawn-failed",
          detail: describeError(e).message,
          code: null,
          signal: null,
          during: "start",
          stderrTail: [],
        });
      }
    });
    return ready;
  }

  private async launch(g: GroupRec): Promise<HostProcess> {
    if (!g.policy) throw new HandlerError("HND_UNKNOWN_GROUP", `no host group named ${g.name}`);
    const manifests = g.types.map((t) => this.slots.get(t)!.manifest);
    const spec = sandboxFor(g.policy, manifests, this.pathVars);
    this.tools ??= findTools();
    this.identity ??= resolveAgentIdentity(this.opts.config.user);
    const supervisorUid = process.getuid?.() ?? 0;
    const { dir: workDir, unreachable } = this.workDir(
      g.name,
      supervisorUid === 0 && spec.runAs === "agent" ? this.identity : null,
    );
    const maxPackage = Math.max(0, ...manifests.map((m) => m.maxPackageBytes));
    const maxOutbound = Math.max(this.opts.config.maxMessageBytes, maxPackage + 1024 * 1024);
    const maxInbound = this.opts.config.maxMessageBytes;
    const base = (this.opts.command ?? defaultHostCommand)(g.name, {
      maxInbound: maxOutbound,
      maxOutbound: maxInbound,
    });
    const launch = buildLaunch({
      base,
      spec,
      supervisorUid,
      identity: this.identity,
      cpuSeconds: Math.max(1, g.limits.cpuSeconds),
      tools: this.tools,
      noUidDrop: unreachable,
    });
    g.launch = launch;
    if (g.cgroupDir === undefined) {
      this.cgroup ??= detectCgroupV2();
      if (this.cgroup.available && this.cgroup.parent) {
        try {
          g.cgroupDir = createHostCgroup(this.cgroup.parent, g.name, g.limits.memoryBytes);
        } catch (e) {
          g.cgroupNote = `cgroup v2 set-up failed (${(e as Error).message}); RSS watchdog enforces the limit`;
        }
      } else {
        g.cgroupNote = `${this.cgroup.reason}; RSS watchdog enforces the limit`;
      }
    }
    const log = this.opts.log.child({ component: "host", group: g.name });
    const proc: HostProcess = new HostProcess({
      group: g.name,
      argv: launch.argv,
      env: hostEnv(workDir),
      cwd: workDir,
      maxInboundBytes: maxInbound,
      maxOutboundBytes: maxOutbound,
      memoryLimitBytes: g.limits.memoryBytes,
      cpuLimitSeconds: Math.max(1, g.limits.cpuSeconds),
      cgroupDir: g.cgroupDir,
      watchdogIntervalMs: this.opts.config.watchdogIntervalMs,
      heartbeatMs: this.opts.config.heartbeatSeconds * 1000,
      heartbeatTimeoutMs: this.opts.config.heartbeatTimeoutSeconds * 1000,
      log,
      onNotification: (n) => this.notification(g, n, log),
      onRequest: (m, a) => this.hostRequest(g, m, a),
      onProtocolError: (p) => this.protocolError(g, p, log),
      onSample: (s) => rssBytes.set({ group: g.name }, s.rssBytes),
      onHeartbeat: (s) => this.applyStatus(s),
      onExit: (exit) => this.onExit(g, proc, exit),
    });
    g.proc = proc;
    g.epoch += 1;
    g.staged.clear();
    g.startedAt = this.now();
    const initArgs: InitArgs = {
      group: g.name,
      workDir,
      handlers: g.types.map((type) => ({
        type,
        module: this.opts.registry.moduleOf(type),
        manifest: this.slots.get(type)!.manifest,
      })),
      pathVars: this.pathVars,
      callTimeoutMs: this.opts.config.callTimeoutSeconds * 1000,
      landlock: {
        enabled: this.opts.config.landlock,
        rules: landlockRules(spec, workDir, {
          executable: process.execPath,
          installDir: this.pathVars.installDir,
        }),
        connectPorts: spec.net === "none" ? [] : spec.net.connectPorts,
      },
    };
    let init: InitResult;
    try {
      init = parseWire(
        InitResult,
        await this.req(g, proc, "init", initArgs, { timeoutMs: 60_000, what: "init", candidate: false }),
        "init",
      );
    } catch (e) {
      proc.kill("protocol", `init failed: ${describeError(e).message}`);
      throw e;
    }
    g.init = init;
    for (const h of init.handlers) {
      if (h.ok) continue;
      const slot = this.slots.get(h.type);
      if (slot) {
        slot.state = "failed";
        slot.error = h.error ?? { code: "HND_HOST_UNRESOLVED", message: `${h.type}: host could not load it` };
      }
    }
    const degraded = this.degradation(g, spec.net === "none", spec.runAs, supervisorUid);
    if (degraded.length) log.warn("host sandbox degraded", { pid: proc.pid, missing: degraded });
    const fields = {
      group: g.name,
      pid: proc.pid,
      uid: init.uid,
      layers: this.hosts().find((h) => h.group === g.name)?.layers,
    };
    log.info("host started", fields);
    this.opts.emit(g.restarts > 0 ? "host-restarted" : "host-started", { ...fields, restarts: g.restarts });
    return proc;
  }

  /** Layers that should be on for this host but are not, for the start-up warning. */
  private degradation(g: GroupRec, netNone: boolean, runAs: "agent" | "root", uid: number): string[] {
    const out: string[] = [];
    const ll = g.init?.landlock;
    if (!ll?.fs) out.push(`landlock-fs (${ll?.error ?? "unavailable"})`);
    if (ll?.fs && !ll.net) out.push(`landlock-net (kernel Landlock ABI ${ll.abi} < 4)`);
    if (uid === 0 && runAs === "agent" && !g.launch?.layers.uidDrop) out.push("uid-drop");
    if (uid === 0 && netNone && !g.launch?.layers.netns) out.push("netns");
    if (!g.launch?.layers.rlimits) out.push("rlimits");
    return out;
  }

  /**
   * STATE/hosts/<group>, 0700, owned by the host's uid; STATE and STATE/hosts
   * get o+x (traverse, not list) so that uid can reach it. When a directory
   * above STATE is closed to that uid, the host keeps uid 0 without any
   * capability (reported as `unreachable`) rather than not running at all.
   */
  private workDir(group: string, drop: HostIdentity | null): { dir: string; unreachable?: string } {
    const hosts = join(this.opts.stateDir, "hosts");
    const dir = join(hosts, group);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    if (!drop) {
      chownSync(dir, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
      return { dir };
    }
    for (let d = dirname(this.opts.stateDir); d !== dirname(d); d = dirname(d)) {
      const st = statSync(d);
      if ((st.mode & 0o001) === 0 && st.uid !== drop.uid) {
        const why = `${d} is not searchable by ${drop.user} (uid ${drop.uid})`;
        this.opts.log.warn(
          "host work dir unreachable for the unprivileged user; keeping uid 0 without capabilities",
          {
            group,
            dir,
            why,
          },
        );
        return { dir, unreachable: why };
      }
    }
    chownSync(dir, drop.uid, drop.gid);
    for (const d of [hosts, this.opts.stateDir]) chmodSync(d, (statSync(d).mode & 0o7777) | 0o001);
    return { dir };
  }

  /** S1: brings a fresh process to the content that is current for each of its handlers. */
  private async reload(g: GroupRec, proc: HostProcess): Promise<void> {
    for (const type of g.types) {
      if (this.slots.get(type)!.desired) await this.loadDesired(g, proc, type);
    }
  }

  /** Loads the desired content of `type` into `proc`; S4 on a failure that is not a crash. */
  private async loadDesired(g: GroupRec, proc: HostProcess, type: string): Promise<void> {
    const slot = this.slots.get(type)!;
    for (let attempt = 0; slot.desired && attempt < 2; attempt++) {
      const d = slot.desired;
      try {
        await this.loadInto(g, proc, type, d.view);
        slot.state = "loaded";
        slot.version = d.version;
        slot.error = undefined;
        return;
      } catch (e) {
        if (!proc.running || (e as { code?: string }).code === "HND_HOST_CRASHED") throw e;
        const err = describeError(e);
        this.opts.log.error("content that was live no longer loads", { group: g.name, type, ...err });
        let replacement: ContentView | null = null;
        try {
          replacement = await this.opts.onContentFailure({
            type,
            group: g.name,
            version: d.version,
            reason: "reload-failed",
            code: err.code,
            detail: err.message,
          });
        } catch (e2) {
          this.opts.log.error("rollback after a failed reload failed", { type, ...describeError(e2) });
        }
        if (replacement && replacement.version !== d.version) {
          slot.desired = { view: replacement, version: replacement.version, activatedAt: 0 };
        } else {
          slot.desired = undefined;
          slot.state = "failed";
          slot.version = null;
          slot.error = err;
        }
      }
    }
    if (slot.desired) {
      slot.desired = undefined;
      slot.state = "failed";
      slot.version = null;
    }
  }

  private async loadInto(g: GroupRec, proc: HostProcess, type: string, view: ContentView): Promise<void> {
    await this.stage(g, proc, type, view, false);
    const timeoutMs = this.opts.config.loadTimeoutSeconds * 1000;
    const r = parseWire(
      PrepareResult,
      await this.req(
        g,
        proc,
        "prepare",
        { type, version: view.version },
        {
          timeoutMs,
          what: `reload ${type} v${view.version}`,
          candidate: false,
        },
      ),
      "prepare",
    );
    g.staged.delete(type);
    const c = parseWire(
      CommitResult,
      await this.req(
        g,
        proc,
        "commit",
        { preparedId: r.preparedId },
        {
          timeoutMs,
          what: `activate ${type} v${view.version}`,
          candidate: false,
        },
      ),
      "commit",
    );
    this.slots.get(type)!.status = c.status;
  }

  /** Sends the payload file by file (no file crosses twice), then asks the host to validate it. */
  private async stage(g: GroupRec, proc: HostProcess, type: string, view: ContentView, candidate: boolean) {
    const timeoutMs = this.opts.config.loadTimeoutSeconds * 1000;
    const what = `${candidate ? "validate" : "reload"} ${type} v${view.version}`;
    g.staged.delete(type);
    for (const path of view.files) {
      await this.req(
        g,
        proc,
        "stageFile",
        { type, version: view.version, path, data: view.read(path) },
        {
          timeoutMs,
          what,
          candidate,
        },
      );
    }
    await this.req(
      g,
      proc,
      "validate",
      { type, version: view.version, signingTime: view.signingTime, files: [...view.files] },
      { timeoutMs, what, candidate },
    );
    if (g.proc === proc) g.staged.set(type, view.version);
  }

  /** One request with metrics, and crash errors that say what the host was doing. */
  private async req(
    g: GroupRec,
    proc: HostProcess,
    method: string,
    args: unknown,
    o: { timeoutMs: number; what: string; candidate: boolean; signal?: AbortSignal },
  ): Promise<unknown> {
    const id = ++opSeq;
    g.ops.set(id, { what: o.what, candidate: o.candidate });
    const started = performance.now();
    let result = "ok";
    try {
      return await proc.request(method, args, { timeoutMs: o.timeoutMs, signal: o.signal });
    } catch (e) {
      const code = (e as { code?: string }).code;
      result =
        code === "HND_HOST_CRASHED"
          ? "crashed"
          : code === "HND_IPC_TIMEOUT"
            ? "timeout"
            : code === "HND_IPC_CANCELLED"
              ? "cancelled"
              : "error";
      if (code === "HND_HOST_CRASHED") {
        throw new HandlerError("HND_HOST_CRASHED", `${o.what}: ${(e as Error).message}`, {
          details: { group: g.name, during: o.what },
        });
      }
      throw e;
    } finally {
      g.ops.delete(id);
      ipcRequests.inc({ group: g.name, method, result });
      ipcSeconds.observe({ group: g.name, method }, (performance.now() - started) / 1000);
    }
  }

  private onExit(g: GroupRec, proc: HostProcess, exit: HostExit): void {
    if (g.proc !== proc) return;
    const during = [...g.ops.values()];
    g.proc = undefined;
    g.ready = undefined;
    g.staged.clear();
    rssBytes.set({ group: g.name }, 0);
    if (this.stopping || exit.reason === "shutdown") {
      this.setState(g, "stopped");
      return;
    }
    const candidate = during.some((o) => o.candidate);
    const crash: CrashInfo = {
      at: new Date(this.now()).toISOString(),
      pid: proc.pid,
      reason: exit.reason,
      detail: exit.detail,
      code: exit.code,
      signal: exit.signal,
      during: during.map((o) => o.what).join(", ") || "idle",
      stderrTail: exit.stderrTail,
    };
    if (g.startedAt && this.now() - g.startedAt > this.opts.config.stableAfterSeconds * 1000) {
      g.backoffMs = this.opts.config.restartBackoffMs;
    }
    this.recordCrash(g, crash, candidate);
  }

  /** S2/S3: records a crash, then restarts with backoff or handles the crash loop. */
  private recordCrash(g: GroupRec, crash: CrashInfo, candidate = false): void {
    g.lastCrash = crash;
    crashesTotal.inc({ group: g.name, reason: crash.reason });
    if (!candidate) g.crashTimes.push(this.now());
    const inWindow = this.pruneCrashes(g);
    this.opts.log.error("host crashed", { group: g.name, ...crash, blamedOnCandidate: candidate, inWindow });
    this.opts.emit("host-crashed", {
      group: g.name,
      pid: crash.pid,
      reason: crash.reason,
      detail: crash.detail,
      code: crash.code,
      signal: crash.signal,
      during: crash.during,
      crashesInWindow: inWindow,
    });
    if (![...this.slots.values()].some((s) => s.group === g.name && s.desired)) {
      // Nothing to serve: start again on demand (S2 — the candidate that crashed it was refused).
      this.setState(g, "stopped");
      return;
    }
    if (inWindow >= this.opts.config.crashLoop.crashes) {
      void this.crashLoop(g, inWindow);
      return;
    }
    if (inWindow < this.opts.config.crashLoop.crashes - 1) g.loopReported = false;
    this.scheduleRestart(g);
  }

  private pruneCrashes(g: GroupRec): number {
    const since = this.now() - this.opts.config.crashLoop.windowSeconds * 1000;
    g.crashTimes = g.crashTimes.filter((t) => t >= since);
    return g.crashTimes.length;
  }

  private scheduleRestart(g: GroupRec): void {
    if (this.stopping || g.restartTimer) return;
    if (g.state !== "crash-looping") this.setState(g, "restarting");
    const delay = g.backoffMs;
    g.backoffMs = Math.min(this.opts.config.maxBackoffMs, Math.max(1, delay * 2));
    g.restartTimer = setTimeout(() => {
      g.restartTimer = undefined;
      if (this.stopping) return;
      g.restarts += 1;
      restartsTotal.inc({ group: g.name });
      void this.start(g).catch(() => {});
    }, delay);
  }

  /** S3. */
  private async crashLoop(g: GroupRec, crashes: number): Promise<void> {
    const window = this.opts.config.crashLoop.windowSeconds * 1000;
    const recent = [...this.slots.values()]
      .filter((s) => s.group === g.name && s.desired && s.desired.activatedAt >= this.now() - window)
      .sort((a, b) => b.desired!.activatedAt - a.desired!.activatedAt);
    const culprit = recent[0];
    this.setState(g, "crash-looping");
    if (!g.loopReported || culprit) {
      this.opts.emit("crash-loop", {
        group: g.name,
        crashes,
        windowSeconds: this.opts.config.crashLoop.windowSeconds,
        contentType: culprit?.type ?? null,
        version: culprit?.desired?.version ?? null,
        lastCrash: g.lastCrash?.detail ?? null,
      });
    }
    if (!culprit) {
      if (!g.loopReported) {
        g.loopReported = true;
        this.opts.onCrashLoop?.({ group: g.name, crashes, detail: g.lastCrash?.detail ?? "" });
      }
      this.scheduleRestart(g);
      return;
    }
    const d = culprit.desired!;
    const detail = `host ${g.name} crashed ${crashes} times within ${this.opts.config.crashLoop.windowSeconds} s after ${culprit.type} v${d.version} was activated (last: ${g.lastCrash?.detail ?? "?"})`;
    let replacement: ContentView | null = null;
    try {
      replacement = await this.opts.onContentFailure({
        type: culprit.type,
        group: g.name,
        version: d.version,
        reason: "crash-loop",
        code: "HND_HOST_CRASH_LOOP",
        detail,
      });
    } catch (e) {
      this.opts.log.error("crash-loop rollback failed", { type: culprit.type, ...describeError(e) });
    }
    if (replacement && replacement.version !== d.version) {
      culprit.desired = { view: replacement, version: replacement.version, activatedAt: 0 };
      culprit.version = replacement.version;
    } else {
      culprit.desired = undefined;
      culprit.state = "failed";
      culprit.version = null;
      culprit.error = { code: "HND_HOST_CRASH_LOOP", message: detail };
    }
    // The rolled-back content gets a fresh count and a prompt restart.
    g.crashTimes = [];
    g.loopReported = false;
    g.backoffMs = this.opts.config.restartBackoffMs;
    if ([...this.slots.values()].some((s) => s.group === g.name && s.desired)) {
      this.setState(g, "restarting");
      this.scheduleRestart(g);
    } else {
      this.setState(g, "stopped");
    }
  }

  private applyStatus(raw: unknown): void {
    const r = StatusResult.safeParse(raw);
    if (!r.success) return;
    for (const h of r.data.handlers) {
      const slot = this.slots.get(h.type);
      if (slot && h.state === "loaded" && h.version === slot.version) slot.status = h.status;
    }
  }

  private notification(g: GroupRec, n: Notification, log: Logger): void {
    if (n.t === "log") {
      log.log(n.level, n.msg, { ...n.f, pid: g.proc?.pid });
      return;
    }
    if (RESERVED_EVENTS.test(n.type)) {
      eventsDropped.inc({ group: g.name });
      this.protocolError(
        g,
        { kind: "reserved-event", message: `event type ${n.type} is reserved`, fatal: false },
        log,
      );
      return;
    }
    const now = this.now();
    const rate = this.opts.config.eventsPerSecond;
    g.tokens = Math.min(rate, g.tokens + ((now - g.tokensAt) / 1000) * rate);
    g.tokensAt = now;
    if (g.tokens < 1) {
      eventsDropped.inc({ group: g.name });
      return;
    }
    g.tokens -= 1;
    const fields = { ...n.f };
    // A host can only speak for its own handlers.
    if (typeof fields.handler !== "string" || !g.types.includes(fields.handler)) delete fields.handler;
    this.opts.emit(n.type, { ...fields, group: g.name });
  }

  private async hostRequest(g: GroupRec, method: string, raw: unknown): Promise<unknown> {
    if (method !== "agent") throw new HandlerError("HND_NO_METHOD", `supervisor: unknown request ${method}`);
    const a = parseWire(AgentCallArgs, raw, "agent");
    const slot = this.slots.get(a.handler);
    // The host asks on behalf of a handler: it must be one of its own, and one that declared agent access.
    if (!slot || slot.group !== g.name || !slot.manifest.privileges.agent || !g.policy?.agent) {
      throw new HandlerError(
        "HND_AGENT_DENIED",
        `${a.handler} (host ${g.name}) may not ask for agent actions`,
      );
    }
    if (!this.opts.agentCall) throw new HandlerError("HND_AGENT_DENIED", "no agent actions available");
    return this.opts.agentCall(a.method, a.args);
  }

  private protocolError(g: GroupRec, p: ProtocolProblem, log: Logger): void {
    ipcProtocolErrors.inc({ group: g.name, kind: p.kind });
    log.warn("rejected a message from the host", {
      pid: g.proc?.pid,
      kind: p.kind,
      problem: p.message,
      fatal: p.fatal,
    });
  }
}

/** Only what the host needs; the supervisor's environment may hold secrets. */
function hostEnv(workDir: string): Record<string, string> {
  const env: Record<string, string> = {
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: workDir,
    TMPDIR: workDir,
    LANG: "C.UTF-8",
    NO_COLOR: "1",
    // From source, bun would try to cache transpiled files under $HOME: nothing to gain in a sandbox.
    BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0",
  };
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("OUTPOST_") && v !== undefined) env[k] = v;
  }
  return env;
}
