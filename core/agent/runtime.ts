/**
 * The agent: content store + handler host + update loop, behind AgentApi.
 * Start-up loads what is installed, and if a handler cannot load its current
 * content the agent falls back to the last-known-good copy on its own and
 * marks the failing version bad, so a defective update can cost at most one
 * handler reload, never the host.
 *
 * Handlers run in sandboxed host processes by default (core/host/manager.ts,
 * docs/handler-host.md); content that makes its host crash-loop is rolled
 * back here, through the same store operations as a failed load.
 */

import { hostname } from "node:os";
import { join } from "node:path";
import type { AgentConfig } from "../config.ts";
import { statePaths } from "../config.ts";
import type { Trust } from "../crypto/verify.ts";
import { EffectiveConfigService } from "../effective/service.ts";
import { ConfigError, describeError, HandlerError, StoreError } from "../errors.ts";
import { ExclusionService } from "../exclusions/service.ts";
import type { HandlerHost } from "../handler/host-contract.ts";
import { HandlerRegistry } from "../handler/registry.ts";
import { HealthBoard } from "../health/reasons.ts";
import type { HostManagerOptions } from "../host/manager.ts";
import { privilegeViolation } from "../host/policy.ts";
import type { SharedTransfer } from "../host/shared-transfer.ts";
import { SoftwareService, type SoftwareServiceOptions } from "../install/software-service.ts";
import { log as rootLog } from "../log.ts";
import { metrics } from "../metrics.ts";
import { refuseStateSymlinks } from "../store/state-links.ts";
import { ContentStore } from "../store/store.ts";
import { ticker } from "../ticker.ts";
import { UpdateMemory } from "../update/memory.ts";
import { type Timers, UpdateLoop } from "../update/schedule.ts";
import type { Transport } from "../update/transport.ts";
import { VERSION } from "../version.ts";
import type { Alert, AlertSink } from "./alerts.ts";
import type { AgentApi, AgentStatus, ContentInfo, RejectionRecord, UpdateCycleReport } from "./api.ts";
import { rollBackFailedContent } from "./content-failure.ts";
import { clearDiskFailures, noteDiskFailure } from "./disk-health.ts";
import { EventBus } from "./events.ts";
import { createHost } from "./host-wiring.ts";
import { acquireLock, assertNotLocked } from "./lock.ts";
import { protectedPaths } from "./protected-paths.ts";
import { openViewWorkRoot, type ViewWorkRoot } from "./read-only-view.ts";
import { type AckResult, RollbackNotices } from "./rollback-notices.ts";
import { loadInstalledContent, rollbacksTotal, type StartupLoadDeps } from "./startup-load.ts";
import { buildStatus, contentInfoOf } from "./status.ts";

export interface AgentOptions {
  config: AgentConfig;
  registry: HandlerRegistry;
  /** Tests: the software switch's probe and liveness (core/install/software-service.ts). */
  software?: Pick<SoftwareServiceOptions, "probe" | "live">;
  alertSinks?: AlertSink[];
  transport?: Transport;
  now?: () => Date;
  timers?: Timers;
  random?: () => number;
  /** Host process overrides (tests: a misbehaving host command). */
  hosts?: Pick<HostManagerOptions, "command">;
  /**
   * Runs after each scheduled update cycle (the entry point wires RepairKit's self-repair pass
   * here; the core does not know it). Called after the cycle has finished, never inside it, so a
   * repair that asks for another update queues behind nothing.
   */
  afterCycle?: (agent: Agent, report: UpdateCycleReport) => Promise<unknown>;
}

const MAX_ERRORS_KEPT = 50;

const cyclesTotal = metrics.counter(
  "outpost_update_cycles_total",
  "Update cycles run, by result (ok, failed)",
);
const rejectionsTotal = metrics.counter(
  "outpost_update_rejections_total",
  "Rejected updates, by error code and content type",
);
const installsTotal = metrics.counter(
  "outpost_content_installs_total",
  "Content versions installed, by type",
);

export class Agent implements AgentApi {
  readonly events = new EventBus();
  /** Health reasons raised by any feature (core/health/reasons.ts); merged into status(). */
  readonly health: HealthBoard;
  /** Exclusions from every source, one matcher for every feature (core/exclusions, docs/exclusions.md). */
  readonly exclusions: ExclusionService;
  private readonly log = rootLog.child({ component: "agent" });
  private readonly store: ContentStore;
  private readonly host: HandlerHost;
  private stopStatusTimer?: () => void;
  /** The registry without handlers refused by their group (G1): update cycles never fetch for those. */
  private readonly usable: HandlerRegistry;
  private readonly now: () => Date;
  private memory?: UpdateMemory;
  /** Created with the first update cycle, which sweeps what a killed process left in it. */
  private spool?: import("../update/spool.ts").Spool;
  private loop?: UpdateLoop;
  private releaseLock?: () => void;
  private readonly startedAt = new Date();
  private lastReport?: UpdateCycleReport;
  private cycleChain: Promise<unknown> = Promise.resolve();
  private trustProblem?: string;
  /** agent.json + policy overlays + flags (core/effective, docs/policy.md). */
  readonly effective: EffectiveConfigService;
  /** AgentSoftware content → the A/B slot switch (core/install/software-service.ts). */
  private readonly software: SoftwareService;
  /** Status sections features add (e.g. "sensors", core/sensors/service.ts), shown by `agent status`. */
  readonly statusSections = new Map<string, () => Record<string, unknown>>();
  /** Opened by a read-only command: nothing may change on disk. */
  private readOnly = false;
  /** A read-only view's private host work dirs (core/agent/read-only-view.ts). */
  private view?: ViewWorkRoot;
  /** Automatic rollbacks keep health AMBER until acknowledged or superseded. */
  private readonly rollbackNotices: RollbackNotices;

  constructor(private readonly opts: AgentOptions) {
    this.health = new HealthBoard(() => (opts.now ?? (() => new Date()))());
    this.health.onChange((c) =>
      this.events.emit("health-changed", {
        change: c.kind,
        ...(c.kind === "cleared" ? { by: c.by } : {}),
        source: c.reason.source,
        level: c.reason.level,
        code: c.reason.code,
        message: c.reason.message,
      }),
    );
    this.now = opts.now ?? (() => new Date());
    this.exclusions = new ExclusionService({
      stateDir: opts.config.stateDir,
      config: opts.config.exclusions,
      protectedPaths: protectedPaths(opts.config.stateDir),
      now: this.now,
    });
    this.rollbackNotices = new RollbackNotices(this.health, () => this.memory, this.now);
    this.store = new ContentStore(opts.config.stateDir);
    this.usable = new HandlerRegistry();
    for (const g of opts.registry.groups()) this.usable.registerGroup(g);
    for (const type of opts.registry.types()) {
      const handler = opts.registry.require(type);
      if (!privilegeViolation(handler.manifest, opts.registry.group(handler.manifest.group))) {
        this.usable.register(handler, opts.registry.moduleOf(type));
      }
    }
    const emit = (type: string, fields?: Record<string, unknown>) => this.events.emit(type, fields);
    const agentCall = (method: string, args?: unknown) => this.agentAction(method, args);
    this.host = createHost(opts, {
      log: this.log,
      health: this.health,
      now: () => this.now().getTime(),
      emit,
      agentCall,
      onContentFailure: (f) =>
        rollBackFailedContent(f, {
          store: this.store,
          now: this.now,
          log: this.log,
          events: this.events,
          rollbackNotices: this.rollbackNotices,
          recordError: (r) => this.recordError(r),
          alert: (a) => this.alert(a),
        }),
      alert: (a) => this.alert(a),
      workRoot: () => this.view?.hostsDir ?? join(opts.config.stateDir, "hosts"),
    });
    this.software = new SoftwareService({
      config: opts.config.software,
      stateDir: opts.config.stateDir,
      health: this.health,
      log: this.log,
      alert: (a) => this.alert(a),
      emit,
      markBad: (type, version, reason) => this.store.markBad(type, version, reason),
      ...opts.software,
    });
    this.statusSections.set("software", () => ({ ...this.software.status() }));
    this.effective = new EffectiveConfigService({
      config: opts.config,
      call: (type, method, args) => this.host.call(type, method, args),
      contributors: (role) =>
        this.usable
          .types()
          .filter((t) => this.usable.require(t).manifest.contributes?.includes(role as never))
          .filter((t) => this.host.state(t).state === "loaded"),
      emit,
      health: this.health,
      log: this.log,
      now: this.now,
    });
    this.statusSections.set("effective", () => this.effective.status());
  }

  get config(): AgentConfig {
    return this.opts.config;
  }

  /**
   * `applyEffective: false` keeps the effective config the last agent applied (as persisted in the
   * state dir; what a read-only view uses too) instead of recomputing it from the contributing
   * handlers — for a one-shot command that loads only the groups it uses (`agent scan` offline).
   */
  async start(opts: { loop?: boolean; readOnly?: boolean; applyEffective?: boolean } = {}): Promise<void> {
    if (opts.readOnly) return this.startReadOnly();
    const paths = statePaths(this.config.stateDir);
    const { mkdirSync } = await import("node:fs");
    mkdirSync(paths.root, { recursive: true, mode: 0o700 });
    refuseStateSymlinks(paths.root);
    this.releaseLock = acquireLock(paths.lock);
    try {
      this.store.open();
      this.memory = new UpdateMemory(this.config.stateDir);
      this.rollbackNotices.restore();
      this.software.atStart();
      await this.loadInstalled();
      if (opts.applyEffective !== false)
        await this.effective
          .apply()
          .catch((e) => this.log.warn("policy not applied at start", describeError(e)));
    } catch (e) {
      this.releaseLock();
      throw e;
    }
    if (opts.loop && this.config.update.enabled) {
      const u = this.config.update;
      this.loop = new UpdateLoop(
        async () => {
          const report = await this.update();
          await this.opts
            .afterCycle?.(this, report)
            .catch((e) => this.log.warn("after-cycle hook failed", describeError(e)));
          return report;
        },
        { intervalSeconds: u.intervalSeconds, jitter: u.jitter, maxBackoffSeconds: u.maxBackoffSeconds },
        () => this.memory?.data.consecutiveFailures ?? 0,
        this.opts.timers,
        this.opts.random,
      );
      this.loop.start();
      // Handler status lives in the host processes and status() is synchronous: pull it in the
      // background so `agent status` shows current entry counts and rule telemetry.
      const host = this.host as HandlerHost & { refreshStatus?: () => Promise<void> };
      if (host.refreshStatus) {
        this.stopStatusTimer = ticker.every(15_000, () => void host.refreshStatus?.().catch(() => {}));
      }
    }
    this.events.emit("agent-started", { version: VERSION });
  }

  async stop(): Promise<void> {
    this.stopStatusTimer?.();
    this.stopStatusTimer = undefined;
    await this.loop?.stop();
    await this.cycleChain.catch(() => {});
    await this.host.unloadAll();
    await Promise.all((this.opts.alertSinks ?? []).map((s) => s.flush?.()));
    this.releaseLock?.();
    this.releaseLock = undefined;
    this.view?.dispose();
    this.view = undefined;
  }

  /**
   * A view for read-only commands (offline `agent status`, `content list`, handler inquiries such
   * as `agent query`): no lock file, hosts in private work dirs, no clean-up, no repair, nothing saved — the state
   * dir is exactly as it was afterwards. Content still loads, so handler
   * state is real; content that fails to load is shown failed, not rolled back.
   */
  private async startReadOnly(): Promise<void> {
    this.readOnly = true;
    const paths = statePaths(this.config.stateDir);
    refuseStateSymlinks(paths.root);
    assertNotLocked(paths.lock);
    this.view = openViewWorkRoot(this.config.stateDir);
    this.memory = new UpdateMemory(this.config.stateDir, { readOnly: true });
    this.rollbackNotices.restore();
    await this.loadInstalled();
    this.events.emit("agent-started", { version: VERSION, readOnly: true });
  }

  private refuseWhenReadOnly(what: string): void {
    const why = `${what}: this agent was opened read-only for a view of the state dir`;
    if (this.readOnly) throw new StoreError("AGENT_READ_ONLY", why);
  }

  /** Start-up: every installed type loaded, or its last-known-good restored (core/agent/startup-load.ts). */
  private loadInstalled(): Promise<void> {
    return loadInstalledContent(this.usable.types(), this.startupDeps());
  }

  private startupDeps(): StartupLoadDeps {
    return {
      store: this.store,
      host: this.host,
      log: this.log,
      readOnly: this.readOnly,
      now: this.now,
      rollbackNotices: this.rollbackNotices,
      emit: (type, fields) => this.events.emit(type, fields),
      recordError: (r) => this.recordError(r),
      alert: (a) => this.alert(a),
    };
  }

  /** One update cycle; `only` limits it to those types, on-demand ones included (core/update/client.ts). */
  update(opts: { only?: readonly string[] } = {}): Promise<UpdateCycleReport> {
    this.refuseWhenReadOnly("update");
    const run = this.cycleChain.then(() => this.runCycle(opts.only));
    this.cycleChain = run.catch(() => {});
    return run;
  }

  /**
   * The trust store a cycle checks signatures with. Separate host processes mean a separate
   * verifier process too (core/crypto/remote-trust.ts): the X.509 and CMS libraries are never
   * evaluated here. `hosts.isolation: in-process` keeps everything in this process.
   */
  /**
   * The trust store at `file` as this agent checks signatures: in its crypto worker
   * (remote-trust.ts), or in-process with `hosts.isolation: in-process`. Public for the checks
   * that run beside the update cycle (RepairKit's trust inspection), so they load no X.509 library
   * into the supervisor either.
   */
  async loadTrust(file: string): Promise<Trust> {
    if (this.config.hosts.isolation === "in-process") {
      const { TrustStore } = await import("../crypto/cms.ts");
      return TrustStore.load(file);
    }
    const { RemoteTrust } = await import("../crypto/remote-trust.ts");
    return RemoteTrust.load(file);
  }

  private async runCycle(only?: readonly string[]): Promise<UpdateCycleReport> {
    const u = this.config.update;
    const memory = this.memory;
    if (!memory) throw new ConfigError("AGENT_NOT_STARTED", "agent not started");
    this.events.emit("update-started", { group: u.group });
    // The update machinery (transports, the trust core) loads with the first cycle: a process that
    // only opens the state dir (`agent scan`, `agent status` offline) never evaluates it.
    const [{ runUpdateCycle }, { transportFor }, { warnIfTrustExpiring }, { contentPolicy }, { Spool }] =
      await Promise.all([
        import("../update/client.ts"),
        import("../update/transport.ts"),
        import("../update/trust-expiry.ts"),
        import("./policy.ts"),
        import("../update/spool.ts"),
      ]);
    this.spool ??= new Spool(statePaths(this.config.stateDir).updateSpool);
    let trust: Trust;
    try {
      trust = await this.loadTrust(u.trust);
      this.trustProblem = undefined;
      warnIfTrustExpiring(trust, this.now(), this.log);
    } catch (e) {
      this.trustProblem = describeError(e).message;
      throw e;
    }
    const report = await runUpdateCycle(
      {
        transport: this.opts.transport ?? transportFor(u.repo),
        trust,
        store: this.store,
        host: this.host,
        registry: this.usable,
        memory,
        spool: this.spool,
        policy: contentPolicy(this.config),
        only,
        log: this.log,
        now: this.now,
        limits: {
          indexMaxBytes: u.indexMaxBytes,
          timeoutMs: u.timeoutSeconds * 1000,
          minBytesPerSecond: u.minBytesPerSecond,
        },
        onRejection: (r) => {
          rejectionsTotal.inc({ code: r.code, type: r.type ?? "" });
          noteDiskFailure(this.health, r.code, r.file, r.reason);
          this.recordError(r);
          // `type` is the event's own field: the content type travels as contentType.
          const { type: contentType, ...rest } = r;
          this.events.emit("update-rejected", { ...rest, contentType });
          this.alert({ kind: "update-rejected", type: r.type, file: r.file, code: r.code, reason: r.reason });
        },
        onInstalled: (e) => {
          installsTotal.inc({ type: e.type });
          this.rollbackNotices.superseded(e.type, e.version);
          this.events.emit("content-installed", {
            contentType: e.type,
            version: e.version,
            previousVersion: e.previousVersion,
          });
        },
      },
      u.group,
    );
    this.lastReport = report;
    if (report.ok) clearDiskFailures(this.health);
    // Tenant policy and flag values ride the same cycle, transport and trust store (docs/policy.md).
    await this.effective
      .sync({
        transport: this.opts.transport ?? transportFor(u.repo),
        trust,
        timeoutMs: u.timeoutSeconds * 1000,
      })
      .catch((e) => this.log.warn("policy sync failed", describeError(e)));
    for (const i of report.installed) {
      if (!this.usable.require(i.type).manifest.contributes?.includes("agent.software")) continue;
      const record = this.store.installed(i.type);
      if (record)
        await this.software
          .apply(this.store.view(record))
          .catch((e) => this.log.warn("software switch failed", describeError(e)));
    }
    if (report.installed.length > 0) {
      await (this.host as HandlerHost & { refreshStatus?: () => Promise<void> })
        .refreshStatus?.()
        .catch(() => {});
    }
    cyclesTotal.inc({ result: report.ok ? "ok" : "failed" });
    this.events.emit("update-finished", {
      ok: report.ok,
      installed: report.installed.length,
      rejected: report.rejected.length,
    });
    return report;
  }

  async rollback(type: string): Promise<ContentInfo> {
    this.refuseWhenReadOnly("rollback");
    this.opts.registry.require(type);
    const run = this.cycleChain.then(async () => {
      const current = this.store.installed(type);
      const lkg = this.store.lkg(type);
      if (!lkg) throw new HandlerError("STORE_NO_LKG", `${type}: no last-known-good content to roll back to`);
      // A version that crashed its host or failed to load stays out, whoever asks for it.
      if (this.store.isBad(type, lkg.version)) {
        throw new StoreError(
          "STORE_ROLLBACK_TARGET_BAD",
          `${type}: the last-known-good v${lkg.version} is marked bad (${this.store.badVersions(type).find((b) => b.version === lkg.version)?.reason ?? "?"}); staying on v${current?.version ?? "-"}`,
          { file: join(this.config.stateDir, "content", type, "bad.json") },
        );
      }
      const view = this.store.view(lkg);
      await this.host.validate(type, view);
      const prepared = await this.host.prepare(type, view);
      // A crash-loop rollback may have moved the pointers while we loaded: swapping again would undo it.
      if (this.store.installed(type)?.dir !== current?.dir) {
        await this.host.discard(prepared);
        throw new HandlerError(
          "STORE_CONFLICT",
          `${type}: content changed during the rollback; nothing done`,
        );
      }
      this.store.rollback(type);
      await this.host.commit(prepared);
      // An admin who rolled back does not want the next hourly cycle to re-install the same version.
      if (current) this.store.markBad(type, current.version, "rolled back by administrator");
      rollbacksTotal.inc({ type, trigger: "manual" });
      this.events.emit("content-rolled-back", {
        contentType: type,
        from: current?.version ?? null,
        to: lkg.version,
        automatic: false,
      });
      this.log.info("content rolled back", { type, from: current?.version, to: lkg.version });
    });
    this.cycleChain = run.catch(() => {});
    await run;
    return this.contentOf(type);
  }

  /** `agent content ack TYPE`: the administrator has seen the automatic rollback of TYPE. */
  async ack(type: string): Promise<AckResult> {
    this.refuseWhenReadOnly("ack");
    this.opts.registry.require(type);
    return this.rollbackNotices.acknowledge(type);
  }

  /** Agent actions that handlers with privileges.agent (RepairKit) may ask for. */
  private async agentAction(method: string, args: unknown): Promise<unknown> {
    switch (method) {
      case "status":
        return this.status();
      case "update":
        return this.update();
      case "verifyContent": {
        const type = (args as { type?: unknown })?.type;
        if (typeof type !== "string") throw new HandlerError("HND_BAD_ARGS", "verifyContent needs {type}");
        return this.store.verifyInstalled(type);
      }
      case "rollback": {
        const type = (args as { type?: unknown })?.type;
        if (typeof type !== "string") throw new HandlerError("HND_BAD_ARGS", "rollback needs {type}");
        return this.rollback(type);
      }
      default:
        throw new HandlerError("HND_NO_METHOD", `no agent action ${method}`);
    }
  }

  call(type: string, method: string, args: unknown, opts?: { signal?: AbortSignal }): Promise<unknown> {
    return this.host.call(type, method, args, opts);
  }

  /** `type`'s shared transfer region (core/host/shared-transfer.ts), when its host runs as a process with one. */
  transfer(type: string): SharedTransfer | undefined {
    return (this.host as { transfer?: (t: string) => SharedTransfer | undefined }).transfer?.(type);
  }

  /** Host processes by group: sandbox layers, limits, usage, restarts (also in status()). */
  hosts() {
    return this.host.hosts();
  }

  private recordError(r: RejectionRecord): void {
    const m = this.memory?.data;
    if (!m) return;
    m.recentRejections.push(r);
    if (m.recentRejections.length > MAX_ERRORS_KEPT)
      m.recentRejections.splice(0, m.recentRejections.length - MAX_ERRORS_KEPT);
    try {
      this.memory?.save();
    } catch (e) {
      // Kept in memory for status either way; a disk that cannot take it is a health reason of its own.
      const d = describeError(e);
      noteDiskFailure(this.health, d.code, d.file ?? "update-state.json", d.message);
      this.log.warn("could not save the error record", d);
    }
  }

  /** An admin alert from a supervisor-side feature (self-help findings, refused telemetry settings). */
  notify(a: Omit<Alert, "at" | "host" | "agentVersion" | "group">): void {
    this.alert(a);
  }

  /** Sends an alert to the event stream and every sink (features such as the IPS use it too). */
  alert(a: Omit<Alert, "at" | "host" | "agentVersion" | "group">): void {
    const alert: Alert = {
      ...a,
      at: this.now().toISOString(),
      host: hostname(),
      agentVersion: VERSION,
      group: this.config.update.group,
    };
    this.events.emit("alert", { alert });
    for (const sink of this.opts.alertSinks ?? []) {
      sink
        .send(alert)
        .catch((e) => this.log.warn("alert sink failed", { sink: sink.name, ...describeError(e) }));
    }
  }

  /** One type's content (a service that follows one type need not read every type's store files). */
  contentOf(type: string): ContentInfo {
    return contentInfoOf(this.store, this.host, type);
  }

  content(): ContentInfo[] {
    return this.opts.registry.types().map((t) => this.contentOf(t));
  }

  status(): AgentStatus {
    return {
      ...buildStatus({
        config: this.config,
        content: this.content(),
        hosts: this.host.hosts(),
        board: this.health.list(),
        memory: this.memory,
        lastReport: this.lastReport,
        trustProblem: this.trustProblem,
        now: this.now(),
        startedAt: this.startedAt,
        nextRunAt: this.loop?.nextRunAt ?? null,
      }),
      exclusions: this.exclusions.summary(),
      ...Object.fromEntries([...this.statusSections].map(([k, f]) => [k, f()])),
    };
  }
}
