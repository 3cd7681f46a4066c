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
 *
 * This file is the HandlerHost API and starting hosts; the other jobs have
 * their own files: content-loader.ts (stage, load, reload — S1, S4),
 * host-request.ts (one request with metrics and crash attribution),
 * launch.ts (command, work dir, environment), supervision.ts (S1–S4),
 * routing.ts (messages from hosts), host-status.ts (what status shows),
 * records.ts (shared records).
 */
import type { HostStatus } from "../agent/api.ts";
import { describeError, HandlerError } from "../errors.ts";
import type { ContentView } from "../handler/contract.ts";
import type { HandlerHost, HandlerSlotState, HandlerState, Prepared } from "../handler/host-contract.ts";
import type { Logger } from "../log.ts";
import { ContentLoader, type StagedFile } from "./content-loader.ts";
import { idleStops, rssBytes } from "./host-metrics.ts";
import { requestHost } from "./host-request.ts";
import { hostStatuses } from "./host-status.ts";
import { buildHostTable, recordFor } from "./host-table.ts";
import { IdleGc } from "./idle-gc.ts";
import { armIdleStop } from "./idle-stop.ts";
import { defaultInstallDir, hostEnv, sandboxGaps } from "./launch.ts";
import { initArgsFor, type LaunchFacts, planLaunch } from "./launch-plan.ts";
import { trackHostProcess } from "./peers.ts";
import type { PathVars } from "./policy.ts";
import { HostProcess } from "./process.ts";
import { CommitResult, InitResult, PrepareResult, parseWire } from "./protocol.ts";
import type { GroupRec, HostManagerOptions, ManagerContext, PreparedToken, TypeSlot } from "./records.ts";
import { HostRouter } from "./routing.ts";
import { type SharedTransfer, TransferPool } from "./shared-transfer.ts";
import { CrashSupervisor } from "./supervision.ts";

// The host's public face: what callers outside core/host import from here.
export { defaultHostCommand, defaultInstallDir } from "./launch.ts";
export type { ContentFailure, HostManagerOptions, HostsConfig } from "./records.ts";

export class HostManager implements HandlerHost {
  private readonly slots = new Map<string, TypeSlot>();
  private readonly groups = new Map<string, GroupRec>();
  private readonly now: () => number;
  private readonly pathVars: PathVars;
  private stopping = false;
  private readonly facts: LaunchFacts = {};
  private readonly ctx: ManagerContext;
  private readonly supervisor: CrashSupervisor;
  private readonly router: HostRouter;
  private readonly transfers = new TransferPool();
  /** Staging reads whole payload files into the supervisor's heap; they are garbage once sent. */
  private readonly gc = new IdleGc();
  private readonly loader: ContentLoader;

  constructor(private readonly opts: HostManagerOptions) {
    this.now = opts.now ?? Date.now;
    this.ctx = {
      opts,
      slots: this.slots,
      groups: this.groups,
      now: () => this.now(),
      stopping: () => this.stopping,
      setState: (g, state) => this.setState(g, state),
      start: (g) => this.start(g),
    };
    this.supervisor = new CrashSupervisor(this.ctx);
    this.router = new HostRouter(this.ctx);
    this.loader = new ContentLoader({
      opts,
      slots: this.slots,
      gc: this.gc,
      transfer: (group) => this.transfers.of(group),
    });
    this.pathVars = { stateDir: opts.stateDir, installDir: defaultInstallDir() };
    const table = buildHostTable(opts.registry, opts.config, opts.log);
    for (const [k, v] of table.slots) this.slots.set(k, v);
    for (const [k, v] of table.groups) this.groups.set(k, v);
  }

  // ------------------------------------------------------------ HandlerHost

  async validate(type: string, view: ContentView): Promise<void> {
    const { g } = this.lookup(type);
    // The process starts first (up to its spawn, synchronously); the files are read and checked
    // while it boots, instead of after it is up.
    const starting = this.ready(g, this.opts.config.loadTimeoutSeconds * 1000);
    let ahead: Map<string, StagedFile>;
    try {
      ahead = this.loader.readAhead(type, view);
    } catch (e) {
      starting.catch(() => {});
      throw e;
    }
    await this.loader.stage(g, await starting, type, view, true, ahead);
  }

  async prepare(type: string, view: ContentView): Promise<Prepared> {
    const { g } = this.lookup(type);
    const proc = await this.ready(g, this.opts.config.loadTimeoutSeconds * 1000);
    if (g.staged.get(type) !== view.version) await this.loader.stage(g, proc, type, view, true);
    const epoch = g.epoch;
    const r = parseWire(
      PrepareResult,
      await requestHost(
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
          await requestHost(
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
    await this.loader.loadDesired(g, proc, prepared.type);
  }

  async discard(prepared: Prepared): Promise<void> {
    const { g } = this.lookup(prepared.type);
    const token = prepared.live as PreparedToken;
    const proc = g.proc;
    if (!proc?.running || g.epoch !== token.epoch) return;
    try {
      await requestHost(
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
    // A method the handler declares longer (manifest.callTimeoutSeconds) keeps its own budget.
    const methodSeconds = slot.manifest.callTimeoutSeconds?.[method] ?? 0;
    return requestHost(
      g,
      proc,
      "call",
      { type, method, args },
      {
        timeoutMs: Math.max(timeoutMs, methodSeconds * 1000),
        signal: opts.signal,
        what: `call ${type}.${method}`,
        candidate: false,
      },
    );
  }

  async unloadAll(): Promise<void> {
    this.stopping = true;
    this.gc.stop();
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
    const g = this.groups.get(slot.host)!;
    return {
      state: this.stateOf(slot),
      version: slot.version,
      ...(slot.status && slot.state === "loaded" ? { status: slot.status } : {}),
      ...(slot.error ? { error: slot.error } : {}),
      host: {
        group: slot.group,
        ...(g.name !== slot.group ? { process: g.name } : {}),
        isolation: "process",
        pid: g.proc?.running ? g.proc.pid : null,
        hostState: g.state,
        restarts: g.restarts,
        lastCrash: g.lastCrash,
      },
    };
  }

  /** The transfer region (shared-transfer.ts) of the host process `type` runs in, once it has started. */
  transfer(type: string): SharedTransfer | undefined {
    const slot = this.slots.get(type);
    return slot ? this.transfers.of(slot.host) : undefined;
  }

  hosts(): HostStatus[] {
    return hostStatuses(this.ctx, (g) => this.supervisor.pruneCrashes(g));
  }

  prestart(types: readonly string[]): void {
    for (const type of types) {
      const slot = this.slots.get(type);
      const g = slot && !slot.refused ? this.groups.get(slot.host) : undefined;
      if (!g || g.proc || g.ready || g.restartTimer || g.state === "crash-looping" || this.stopping) continue;
      g.prestarted = this.start(g);
    }
  }

  /** Starts `group`'s host before it has content (pre-warming, benchmarks); resolves when it runs. */
  async warm(group: string): Promise<void> {
    const g = recordFor(this.groups, group);
    if (!g) throw new HandlerError("HND_UNKNOWN_GROUP", `no handlers in host group ${group}`);
    await this.ready(g, this.opts.config.loadTimeoutSeconds * 1000);
  }

  /** Refreshes cached handler status from every running host (status() is synchronous). */
  async refreshStatus(): Promise<void> {
    await Promise.all(
      [...this.groups.values()].map(async (g) => {
        const proc = g.proc;
        if (!proc?.running || g.state !== "running") return;
        // Nothing happened in the host since its last status: the cached one is current.
        if (proc.quietSince(proc.lastStatusAt)) return;
        try {
          this.router.applyStatus(
            await requestHost(g, proc, "status", null, {
              timeoutMs: 5000,
              what: "status",
              candidate: false,
              quiet: true,
            }),
          );
          proc.lastStatusAt = Date.now();
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
    return { slot, g: this.groups.get(slot.host)! };
  }

  private stateOf(slot: TypeSlot): HandlerState {
    const g = this.groups.get(slot.host)!;
    // A loop is a loop until the crash window drains, even while a restarted process is briefly up.
    if (
      slot.desired &&
      (g.state === "crash-looping" || this.supervisor.pruneCrashes(g) >= this.opts.config.crashLoop.crashes)
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
    const prestarted = g.prestarted;
    if (prestarted) {
      // A start begun ahead (prestart): its failure is this request's answer, not a reason to start
      // another process; the process it gave is checked below like any other.
      g.prestarted = undefined;
      try {
        await prestarted;
      } catch (e) {
        // Unless something started it again since.
        if (!g.ready && !g.proc?.running) throw e;
      }
    }
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
    // A new start supersedes a prestart nobody asked for: its failure is not the next request's answer.
    g.prestarted = undefined;
    this.setState(g, g.restarts > 0 || g.lastCrash ? "restarting" : "starting");
    const epochBefore = g.epoch;
    const ready = (async () => {
      const proc = await this.launch(g);
      try {
        await this.loader.reload(g, proc);
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
        this.supervisor.recordCrash(g, {
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
    const plan = planLaunch(
      g,
      g.policy,
      g.types.map((t) => this.slots.get(t)!.manifest),
      this.opts,
      this.pathVars,
      this.facts,
    );
    const { spec, workDir, supervisorUid, maxInbound, maxOutbound } = plan;
    const log = this.opts.log.child({ component: "host", group: g.name });
    // The control plane refuses connections from host processes (core/control/peer-guard.ts).
    let untrack = () => {};
    const manifests = g.types.map((t) => this.slots.get(t)!.manifest);
    const transfer = this.transfers.forSpawn(g.name, manifests);
    const proc: HostProcess = new HostProcess({
      group: g.name,
      ...(transfer ? { transfer } : {}),
      argv: plan.argv,
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
      onNotification: (n) => this.router.notification(g, n, log),
      onRequest: (m, a) => this.router.hostRequest(g, m, a),
      onProtocolError: (p) => this.router.protocolError(g, p, log),
      onSample: (s) => rssBytes.set({ group: g.name }, s.rssBytes),
      onHeartbeat: (s) => this.router.applyStatus(s),
      onExit: (exit) => {
        untrack();
        this.supervisor.onExit(g, proc, exit);
      },
    });
    untrack = trackHostProcess(proc.pid);
    g.proc = proc;
    g.epoch += 1;
    g.staged.clear();
    g.startedAt = this.now();
    const initArgs = initArgsFor(g, plan, this.opts, this.pathVars);
    let init: InitResult;
    try {
      init = parseWire(
        InitResult,
        await requestHost(g, proc, "init", initArgs, { timeoutMs: 60_000, what: "init", candidate: false }),
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
    const degraded = sandboxGaps(g, spec.net === "none", spec.runAs, supervisorUid);
    if (degraded.length) log.warn("host sandbox degraded", { pid: proc.pid, missing: degraded });
    const fields = {
      group: g.name,
      pid: proc.pid,
      uid: init.uid,
      layers: this.hosts().find((h) => (h.process ?? h.group) === g.name)?.layers,
    };
    log.info("host started", fields);
    this.opts.emit(g.restarts > 0 ? "host-restarted" : "host-started", { ...fields, restarts: g.restarts });
    const idle = this.opts.config.idleStop;
    // A shared process stops only when every group in it may (one hot group keeps it up).
    if (idle.afterSeconds > 0 && g.groups.every((name) => idle.groups.includes(name))) {
      const disarm = armIdleStop(proc, idle.afterSeconds * 1000, () => this.stopIdle(g, proc, log));
      void proc.exited.then(disarm);
    }
    return proc;
  }

  /** Stops a quiet host of a group that holds nothing hot; the next call starts it again (idle-stop.ts). */
  private stopIdle(g: GroupRec, proc: HostProcess, log: Logger): void {
    if (g.proc !== proc || g.state !== "running" || this.stopping) return;
    log.info("host stopped after an idle period", { group: g.name, pid: proc.pid });
    idleStops.inc({ group: g.name });
    // Detached before the first await: a call from now on starts a fresh host instead of waiting for
    // this one to exit (its exit is then not the group's business: CrashSupervisor.onExit ignores it).
    g.proc = undefined;
    g.ready = undefined;
    g.staged.clear();
    rssBytes.set({ group: g.name }, 0);
    this.setState(g, "stopped");
    void proc.shutdown(5000);
  }
}
