/**
 * The IPS service in the supervisor (`agent run` starts it beside the
 * agent): decides whether the packet path should be on, turns it on and
 * off, and watches it.
 *
 * On  ⇔  (admin choice, else config `ips.enabled`)
 *        ∧ the `ips` flag allows it (once flags are in force, docs/policy.md)
 *        ∧ EPIPS_data loaded
 *        ∧ no NTP_OVERRIDES entry matches a loaded module
 *        ∧ not disabled by safety
 *
 * Turning on installs the queue rules (core/sensors/nfqueue/rules.ts) and
 * binds the queue (nfq.ts); turning off unbinds (held packets are accepted
 * first) and removes the rules. Rules a crashed agent left behind are
 * removed at start. A safety trip (watchdog.ts) persists (state.ts), raises
 * health RED through the health board, alerts, and lasts until `agent ips
 * enable` or a newer EPIPS_data version.
 *
 * The settings follow the effective configuration (agent-service.ts): a
 * policy change to `ips.enabled|mode|ports` re-installs the queue rules
 * with the new settings (`applyConfig`); settings that do not start are
 * refused and the previous ones put back.
 */

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Agent } from "../../core/agent/runtime.ts";
import type { AgentConfig } from "../../core/config.ts";
import { describeError, OutpostError } from "../../core/errors.ts";
import type { IpsConfig } from "../../core/ips-config.ts";
import { nodeNet } from "../../core/lazy-builtins.ts";
import { log } from "../../core/log.ts";
import { NfQueue, type QueueOptions } from "../../core/sensors/nfqueue/nfq.ts";
import { type Backend, QueueRules } from "../../core/sensors/nfqueue/rules.ts";
import { ticker } from "../../core/ticker.ts";
import type { LoadedModule, OverrideMatch } from "../NTP_OVERRIDES/format.ts";
import { ModuleReader, modulesFingerprint } from "../NTP_OVERRIDES/modules.ts";
import type { Detection } from "./engine.ts";
import { PacketPath, type PathCounters } from "./packet-path.ts";
import { type IpsState, loadIpsState, saveIpsState } from "./state.ts";
import { judge, parseProcQueue, percentile, type Trip } from "./watchdog.ts";

const logger = log.child({ component: "ips" });

export type IpsPhase = "off" | "no-content" | "overridden" | "disabled-by-safety" | "error" | "active";

export interface IpsStatus {
  enabled: boolean;
  phase: IpsPhase;
  /** One line for people: why it is in this phase. */
  reason: string;
  mode: IpsConfig["mode"];
  queue: number;
  backend: Backend | null;
  admin: IpsState["admin"];
  configEnabled: boolean;
  contentVersion: number | null;
  override: OverrideMatch | null;
  safety: IpsState["safety"];
  counters: PathCounters & {
    received: number;
    overruns: number;
    verdictErrors: number;
    suppressedEvents: number;
  };
  latencyMs: { p50: number; p99: number; samples: number };
  peakPending: number;
  /** True when the `ips` flag keeps the IPS off (docs/policy.md, "Feature gates"). */
  withheldByFlag: boolean;
  /** Last self-disable: ms from the decision until the queue was unbound (traffic no longer held). */
  lastTripMs: number | null;
  /** … and until the packet-filter rules were gone too. */
  lastRulesRemovedMs: number | null;
}

/** What the service needs from a bound queue (NfQueue; a fake in unit tests). */
export type QueueLike = Pick<NfQueue, "counters" | "verdict" | "close">;

/** What the service needs from the agent (a real Agent, or a fake in tests). */
export type IpsAgent = Pick<Agent, "call" | "contentOf" | "hosts" | "events" | "health" | "alert">;

/** What the `ips` flag says now: allowed (gates not in force, or flag on), and whether it took a wanted IPS away. */
export interface IpsGate {
  allowed: boolean;
  withheld: boolean;
}

export class IpsService {
  readonly name = "ips";
  private state: IpsState;
  private rules: QueueRules;
  private settings: IpsConfig;
  private readonly gate: () => IpsGate;
  private queue?: QueueLike;
  private readonly openQueue: (o: QueueOptions) => QueueLike;
  private path?: PacketPath;
  private backend: Backend | null = null;
  private phase: IpsPhase = "off";
  private reason = "not started";
  private override: OverrideMatch | null = null;
  private modulesPrint = "";
  /** Caches version files between polls; a new one when the configured paths change. */
  private moduleReader?: { paths: IpsConfig["modules"]; reader: ModuleReader };
  private overridesVersion: number | null = null;
  private timers: (() => void)[] = [];
  private unsubscribe?: () => void;
  private chain: Promise<unknown> = Promise.resolve();
  private prevKernel = { dropped: 0, userDropped: 0 };
  private prevOverruns = 0;
  private probeFailures = 0;
  private probing = false;
  private eventsThisSecond = 0;
  private eventSecond = 0;
  private suppressed = 0;
  private lastTripMs: number | null = null;
  private lastRulesRemovedMs: number | null = null;
  private offAt = 0;
  private startedAtMs = 0;
  private stopped = false;
  /** Counters of paths that were stopped, so status totals survive an off/on. */
  private retired?: IpsStatus["counters"];

  constructor(
    private readonly agent: IpsAgent,
    private readonly config: AgentConfig,
    opts: { rules?: QueueRules; openQueue?: (o: QueueOptions) => QueueLike; gate?: () => IpsGate } = {},
  ) {
    this.settings = config.ips;
    this.gate = opts.gate ?? (() => ({ allowed: true, withheld: false }));
    this.rules = opts.rules ?? new QueueRules();
    this.openQueue = opts.openQueue ?? ((o) => NfQueue.open(o));
    const loaded = loadIpsState(config.stateDir);
    this.state = loaded.state;
    if (loaded.problem) logger.error("ips state file unreadable; IPS kept off", { problem: loaded.problem });
  }

  /** Present while our packet-filter rules may exist (crash recovery at the next start). */
  private get marker(): string {
    return join(this.config.stateDir, "ips", "rules-installed");
  }

  private get cfg(): IpsConfig {
    return this.settings;
  }

  /**
   * New settings from the effective configuration: a running packet path is
   * rebuilt with them (rules and queue re-installed). Throws when they do not
   * start — the caller then applies the previous settings again.
   */
  applyConfig(next: IpsConfig, why = "configuration changed"): Promise<void> {
    return this.serial(async () => {
      this.settings = next;
      if (this.queue) await this.turnOff();
      await this.reconcileNow(why);
      if (this.phase === "error") throw new OutpostError("POL_SETTINGS_NOT_STARTED", this.reason);
    });
  }

  async start(): Promise<void> {
    this.stopped = false;
    // Crash recovery: rules a killed agent left behind go first. The marker (written before rules
    // are installed, removed after they are gone) spares every other start a dozen process spawns.
    if (existsSync(this.marker)) {
      this.rules.remove();
      rmSync(this.marker, { force: true });
    }
    this.unsubscribe = this.agent.events.subscribe((e) => {
      if (e.type !== "content-installed" && e.type !== "content-rolled-back" && e.type !== "handler-failed")
        return;
      if (e.contentType === "EPIPS_data" || e.contentType === "NTP_OVERRIDES") {
        if (e.contentType === "NTP_OVERRIDES") this.modulesPrint = "";
        void this.reconcile(`${e.contentType} ${e.type}`);
      }
    });
    // On the supervisor's shared ticker (core/ticker.ts): these wake the process together with its other jobs.
    this.timers.push(ticker.every(this.cfg.selfDisable.checkIntervalMs, () => void this.watch()));
    this.timers.push(
      ticker.every(this.cfg.modules.pollMs, () => {
        if (!this.stopped) void this.reconcile("modules poll");
      }),
    );
    if (this.cfg.selfDisable.probe) {
      this.timers.push(ticker.every(this.cfg.selfDisable.probe.intervalMs, () => void this.probe()));
    }
    this.raiseSafetyHealth();
    await this.reconcile("start");
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const stop of this.timers) stop();
    this.timers = [];
    this.unsubscribe?.();
    await this.serial(() => this.turnOff());
    this.phase = "off";
    this.reason = "agent stopped";
  }

  /** `agent ips enable`: clears a safety trip and turns the IPS on (if content and overrides allow). */
  async enable(): Promise<IpsStatus> {
    this.state = { admin: "enabled", safety: null };
    saveIpsState(this.config.stateDir, this.state);
    this.agent.health.clear("ips", "IPS_SELF_DISABLED");
    this.agent.events.emit("ips-enabled", { by: "admin" });
    await this.reconcile("enabled by admin");
    return this.status();
  }

  /** `agent ips disable`: off until enabled again, whatever the config says. */
  async disable(): Promise<IpsStatus> {
    this.state = { ...this.state, admin: "disabled" };
    saveIpsState(this.config.stateDir, this.state);
    this.agent.events.emit("ips-disabled", { by: "admin" });
    await this.reconcile("disabled by admin");
    return this.status();
  }

  status(): IpsStatus {
    const q = this.queue?.counters;
    const p = this.path?.counters;
    const r = this.retired;
    const sum = (k: keyof PathCounters) => (p?.[k] ?? 0) + (r?.[k] ?? 0);
    const samples = this.path?.latencySamples() ?? new Float64Array();
    return {
      enabled: this.phase === "active",
      phase: this.phase,
      reason: this.reason,
      mode: this.cfg.mode,
      queue: this.cfg.queue,
      backend: this.backend,
      admin: this.state.admin,
      configEnabled: this.cfg.enabled,
      withheldByFlag: this.phase === "off" && this.reason.startsWith("withheld by flag"),
      contentVersion: this.epipsVersion(),
      override: this.override,
      safety: this.state.safety,
      counters: {
        packets: sum("packets"),
        inspected: sum("inspected"),
        accepted: sum("accepted"),
        dropped: sum("dropped"),
        uninspected: sum("uninspected"),
        timeouts: sum("timeouts"),
        errors: sum("errors"),
        malformed: sum("malformed"),
        detections: sum("detections"),
        pureAcks: sum("pureAcks"),
        received: (q?.received ?? 0) + (r?.received ?? 0),
        overruns: (q?.overruns ?? 0) + (r?.overruns ?? 0),
        verdictErrors: (q?.verdictErrors ?? 0) + (r?.verdictErrors ?? 0),
        suppressedEvents: this.suppressed,
      },
      latencyMs: {
        p50: round(percentile(samples, 50)),
        p99: round(percentile(samples, 99)),
        samples: samples.length,
      },
      peakPending: this.path?.peakPending ?? 0,
      lastTripMs: this.lastTripMs,
      lastRulesRemovedMs: this.lastRulesRemovedMs,
    };
  }

  /** Re-evaluates whether the path should be on; serialised so two triggers never race. */
  reconcile(why: string): Promise<void> {
    return this.serial(() => this.reconcileNow(why));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => {});
    return run;
  }

  private epipsVersion(): number | null {
    const c = this.agent.contentOf("EPIPS_data");
    return c && c.handlerState === "loaded" ? c.version : null;
  }

  private async reconcileNow(why: string): Promise<void> {
    if (this.stopped) return;
    const version = this.epipsVersion();
    // A newer EPIPS_data re-arms an IPS that switched itself off (the seed's vendor fix path).
    const s = this.state.safety;
    if (s && version !== null && s.contentVersion !== null && version > s.contentVersion) {
      logger.info("newer EPIPS_data re-arms the IPS", { tripped: s.contentVersion, now: version });
      this.state = { ...this.state, safety: null };
      saveIpsState(this.config.stateDir, this.state);
      this.agent.health.clear("ips", "IPS_SELF_DISABLED");
      this.agent.events.emit("ips-enabled", { by: "content", version });
    }
    await this.checkOverrides();
    const wanted = this.state.admin ? this.state.admin === "enabled" : this.cfg.enabled;
    const gate = this.gate();
    let phase: IpsPhase;
    let reason: string;
    if ((wanted && !gate.allowed) || (gate.withheld && this.state.admin !== "disabled")) {
      phase = "off";
      reason = "withheld by flag ips (needs the Flags supplement's available and the Flags Service's on)";
    } else if (!wanted) {
      phase = "off";
      reason =
        this.state.admin === "disabled" ? "disabled by administrator" : "disabled in config (ips.enabled)";
    } else if (this.state.safety) {
      phase = "disabled-by-safety";
      reason = `disabled by safety: ${this.state.safety.reason} (${this.state.safety.code})`;
    } else if (this.override) {
      phase = "overridden";
      reason = `disabled by override (module ${this.override.module} version ${this.override.version ?? "unknown"}): ${this.override.reason}`;
    } else if (version === null) {
      phase = "no-content";
      reason = "no EPIPS_data loaded";
    } else {
      phase = "active";
      reason = `${this.cfg.mode} mode, EPIPS_data v${version}`;
    }
    if (phase === "active") {
      if (!this.queue) {
        try {
          await this.turnOn();
        } catch (e) {
          await this.turnOff();
          const d = describeError(e);
          phase = "error";
          reason = `${d.code}: ${d.message}`;
          this.agent.health.raise("ips", "amber", "IPS_START_FAILED", reason);
        }
      }
    } else {
      await this.turnOff();
    }
    if (phase !== "error") this.agent.health.clear("ips", "IPS_START_FAILED");
    if (phase === "overridden") this.agent.health.raise("ips", "info", "IPS_OVERRIDDEN", reason);
    else this.agent.health.clear("ips", "IPS_OVERRIDDEN");
    if (phase !== this.phase || reason !== this.reason) {
      logger.info("ips state", { phase, reason, why });
      this.agent.events.emit("ips-state", { phase, reason, why });
    }
    this.phase = phase;
    this.reason = reason;
  }

  private async checkOverrides(): Promise<void> {
    const ntp = this.agent.contentOf("NTP_OVERRIDES");
    const version = ntp && ntp.handlerState === "loaded" ? ntp.version : null;
    if (version === null) {
      this.override = null;
      this.overridesVersion = null;
      return;
    }
    let modules: LoadedModule[];
    try {
      const paths = this.cfg.modules;
      if (this.moduleReader?.paths !== paths) this.moduleReader = { paths, reader: new ModuleReader(paths) };
      modules = this.moduleReader.reader.read();
    } catch (e) {
      logger.warn("cannot read loaded modules", describeError(e));
      return;
    }
    const print = modulesFingerprint(modules);
    if (print === this.modulesPrint && version === this.overridesVersion) return;
    try {
      const r = (await this.agent.call("NTP_OVERRIDES", "check", { modules })) as {
        matches: OverrideMatch[];
      };
      this.override = r.matches[0] ?? null;
      this.modulesPrint = print;
      this.overridesVersion = version;
    } catch (e) {
      // Cannot evaluate: keep the previous verdict; the next poll tries again.
      logger.warn("NTP_OVERRIDES check failed", describeError(e));
    }
  }

  private async turnOn(): Promise<void> {
    const cfg = this.cfg;
    const path = new PacketPath(
      cfg,
      { verdict: (id, v) => this.queue?.verdict(id, v) },
      (args, signal) => this.agent.call("EPIPS_data", "inspect", args, { signal }),
      (d) => this.detected(d),
    );
    // Bind before the rules exist: packets are never queued to a queue with no reader.
    this.queue = this.openQueue({
      queue: cfg.queue,
      maxLen: cfg.queueMaxLen,
      copyBytes: cfg.copyBytes,
      onPacket: (p) => path.onPacket(p),
      onError: (code, message) => logger.warn("queue read error", { code, message }),
    });
    this.path = path;
    mkdirSync(dirname(this.marker), { recursive: true });
    writeFileSync(this.marker, `${process.pid}\n`);
    this.backend = this.rules.install({
      queue: cfg.queue,
      inbound: cfg.ports.inbound,
      outbound: cfg.ports.outbound,
    });
    const row = this.readProc();
    this.prevKernel = { dropped: row?.dropped ?? 0, userDropped: row?.userDropped ?? 0 };
    this.prevOverruns = 0;
    this.probeFailures = 0;
    this.path.takeWindow();
    this.startedAtMs = performance.now();
    logger.info("ips packet path on", { backend: this.backend, queue: cfg.queue, mode: cfg.mode });
  }

  /**
   * Off, fastest part first: held packets are accepted and the queue unbound
   * (from then on `bypass` passes everything — the network is whole again),
   * then the rules are removed (a few process spawns; harmless if slow).
   */
  private async turnOff(): Promise<void> {
    const path = this.path;
    const queue = this.queue;
    path?.releaseAll();
    if (queue) await queue.close();
    this.offAt = performance.now();
    // Keep the totals of this path for status before dropping it.
    if (path && queue) this.retired = this.status().counters;
    this.path = undefined;
    this.queue = undefined;
    if (this.backend || queue) {
      this.rules.remove(this.backend ?? undefined);
      rmSync(this.marker, { force: true });
    }
    this.backend = null;
  }

  private readProc() {
    try {
      if (!existsSync(this.cfg.procQueue)) return null;
      return parseProcQueue(readFileSync(this.cfg.procQueue, "utf8"), this.cfg.queue);
    } catch {
      return null;
    }
  }

  private async watch(): Promise<void> {
    if (this.stopped || !this.queue || !this.path || this.phase !== "active") return;
    const row = this.readProc();
    const kernelDrops = row
      ? Math.max(0, row.dropped - this.prevKernel.dropped) +
        Math.max(0, row.userDropped - this.prevKernel.userDropped)
      : 0;
    if (row) this.prevKernel = { dropped: row.dropped, userDropped: row.userDropped };
    const socketOverruns = this.queue.counters.overruns - this.prevOverruns;
    this.prevOverruns = this.queue.counters.overruns;
    const host = this.agent.hosts().find((h) => h.group === "ips");
    // Detect mode accepts on arrival: its latencies say nothing about the verdict path.
    const window = this.path.takeWindow();
    const latencies = this.cfg.mode === "prevent" ? window : [];
    const trip = judge(
      {
        kernelDrops,
        socketOverruns,
        backlog: Math.max(row?.total ?? 0, this.path.takePeak()),
        latencies,
        hostState: host?.state ?? null,
        hostCrashes: host?.crashesInWindow ?? 0,
        probeFailures: this.probeFailures,
      },
      this.cfg,
    );
    if (trip) await this.trip(trip);
  }

  /** Self-disable: off now, remembered, RED, alerted. */
  async trip(t: Trip): Promise<void> {
    await this.serial(async () => {
      if (this.phase !== "active") return;
      const t0 = performance.now();
      await this.turnOff();
      this.lastTripMs = round(this.offAt - t0);
      this.lastRulesRemovedMs = round(performance.now() - t0);
      this.state = {
        ...this.state,
        safety: {
          code: t.code,
          reason: t.reason,
          at: new Date().toISOString(),
          contentVersion: this.epipsVersion(),
        },
      };
      saveIpsState(this.config.stateDir, this.state);
      this.phase = "disabled-by-safety";
      this.reason = `disabled by safety: ${t.reason} (${t.code})`;
      this.raiseSafetyHealth();
      logger.error("IPS disabled itself", { code: t.code, reason: t.reason, offMs: this.lastTripMs });
      this.agent.events.emit("ips-self-disabled", {
        code: t.code,
        reason: t.reason,
        offMs: this.lastTripMs,
        rulesRemovedMs: this.lastRulesRemovedMs,
      });
      this.agent.events.emit("ips-state", { phase: this.phase, reason: this.reason, why: t.code });
      this.agent.alert({ kind: "ips-self-disabled", type: "EPIPS_data", code: t.code, reason: t.reason });
    });
  }

  private raiseSafetyHealth(): void {
    const s = this.state.safety;
    if (!s) return;
    this.agent.health.raise(
      "ips",
      "red",
      "IPS_SELF_DISABLED",
      `IPS disabled itself: ${s.reason} (${s.code}); run 'agent ips enable' or install a newer EPIPS_data`,
    );
  }

  private detected(ds: Detection[]): void {
    const sec = Math.floor(Date.now() / 1000);
    if (sec !== this.eventSecond) {
      this.eventSecond = sec;
      this.eventsThisSecond = 0;
    }
    for (const d of ds) {
      if (this.eventsThisSecond >= this.cfg.maxEventsPerSecond) {
        this.suppressed++;
        continue;
      }
      this.eventsThisSecond++;
      const blocked = d.action === "drop" && this.cfg.mode === "prevent";
      const { packet: _packet, ...rest } = d;
      this.agent.events.emit("ips-detection", { ...rest, mode: this.cfg.mode, blocked });
    }
  }

  private async probe(): Promise<void> {
    const p = this.cfg.selfDisable.probe;
    if (!p || this.probing || this.phase !== "active") return;
    this.probing = true;
    const i = p.target.lastIndexOf(":");
    const host = p.target.slice(0, i).replace(/^\[|\]$/g, "");
    const port = Number(p.target.slice(i + 1));
    const ok = await new Promise<boolean>((resolve) => {
      const sock = nodeNet().connect({ host, port });
      const done = (v: boolean) => {
        clearTimeout(timer);
        sock.destroy();
        resolve(v);
      };
      const timer = setTimeout(() => done(false), p.timeoutMs);
      sock.once("connect", () => done(true));
      sock.once("error", () => done(false));
    });
    this.probing = false;
    this.probeFailures = ok ? 0 : this.probeFailures + 1;
  }

  /** Milliseconds since the path came on (tests and the demo measure reaction time with it). */
  get activeForMs(): number {
    return this.phase === "active" ? performance.now() - this.startedAtMs : 0;
  }
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
