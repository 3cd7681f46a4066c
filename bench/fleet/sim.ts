/**
 * A simulated fleet in one process: thousands of agents, each running the
 * real update client (`runUpdateCycle`: real transport, real index and
 * package verification, real policy and R1-R11 checks) on a shared fake
 * clock, with lightweight in-memory stand-ins for the parts that would
 * otherwise cost a process and a state folder per agent: the content store,
 * the update memory and the handler host. Heartbeats are built and sent by
 * the real `HeartbeatReporter`.
 *
 * What a simulated agent adds on top, standing in for the handler host's
 * crash-loop protection: content marked `CRASH-RATE r` crashes its handler
 * on a fixed share r of hosts shortly after going live; the agent then rolls
 * back to last-known-good and marks the version bad, as the real agent does.
 *
 * Used by test/fleet.test.ts (200 agents, folder repository) and
 * bench/fleet/run.ts (thousands of agents against nginx).
 */
import type { AgentStatus, ContentInfo, UpdateCycleReport } from "../../core/agent/api.ts";
import { EventBus } from "../../core/agent/events.ts";
import { HeartbeatReporter } from "../../core/agent/heartbeat.ts";
import type { TrustStore } from "../../core/crypto/cms.ts";
import { StoreError } from "../../core/errors.ts";
import { type ContentView, defineHandler, viewOverBytes } from "../../core/handler/contract.ts";
import type { Prepared } from "../../core/handler/host-contract.ts";
import { HandlerRegistry } from "../../core/handler/registry.ts";
import { Logger } from "../../core/log.ts";
import type { VerifiedPackage } from "../../core/package/open.ts";
import type { InstalledRecord, StagedContent } from "../../core/store/store.ts";
import { runUpdateCycle } from "../../core/update/client.ts";
import type { UpdateMemoryData } from "../../core/update/memory.ts";
import { nextDelaySeconds, type SchedulePolicy } from "../../core/update/schedule.ts";
import type { Transport } from "../../core/update/transport.ts";
import type { ContentPolicy } from "../../core/update/trusted-state.ts";
import type { ReleaseEngine } from "../../fleet/engine.ts";

export const SIM_TYPE = "SimRules";
export const SIM_FILE = "rules.txt";

/** Payload for a simulated content version; `crashRate` > 0 makes it crash that share of hosts. */
export function simPayload(version: number, crashRate = 0): Record<string, string> {
  return {
    [SIM_FILE]: `rules v${version}\n${crashRate > 0 ? `CRASH-RATE ${crashRate}\n` : ""}${"x".repeat(2000)}\n`,
  };
}

export const simHandler = defineHandler<{ version: number; crashRate: number }>({
  manifest: {
    name: SIM_TYPE,
    description: "simulated detection content",
    group: "scanner",
    privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false },
  },
  validate(view) {
    if (!view.readText(SIM_FILE).startsWith("rules v")) throw new Error("not a rules file");
  },
  load(view) {
    const m = /CRASH-RATE ([0-9.]+)/.exec(view.readText(SIM_FILE));
    return { version: view.version, crashRate: m ? Number(m[1]) : 0 };
  },
});

/** Deterministic PRNG (mulberry32), so a seeded simulation replays exactly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------- stand-ins

interface Held {
  record: InstalledRecord;
  files: Map<string, Uint8Array>;
}

/** The content store's contract in memory: current, last-known-good, bad list. */
export class MemoryStore {
  private readonly current = new Map<string, Held>();
  private readonly lkgs = new Map<string, Held>();
  private readonly staged = new Map<string, Held>();
  private readonly bad = new Map<string, Map<number, string>>();

  constructor(private readonly now: () => Date) {}

  installed(type: string): InstalledRecord | null {
    return this.current.get(type)?.record ?? null;
  }
  lkg(type: string): InstalledRecord | null {
    return this.lkgs.get(type)?.record ?? null;
  }
  isBad(type: string, version: number): boolean {
    return this.bad.get(type)?.has(version) ?? false;
  }
  markBad(type: string, version: number, reason: string): void {
    const m = this.bad.get(type) ?? new Map<number, string>();
    m.set(version, reason);
    this.bad.set(type, m);
  }
  badVersions(type: string): number[] {
    return [...(this.bad.get(type)?.keys() ?? [])].sort((a, b) => a - b);
  }
  stage(pkg: VerifiedPackage, sha384: string): StagedContent {
    const m = pkg.manifest;
    const dir = `versions/${m.version}-${sha384.slice(0, 16)}`;
    const staged: StagedContent = {
      type: m.type,
      version: m.version,
      sha384,
      dir,
      signingTime: pkg.signingTime.toISOString(),
      manifest: m,
    };
    this.staged.set(`${m.type}/${dir}`, {
      record: { ...staged, installedAt: this.now().toISOString() },
      files: new Map(pkg.files),
    });
    return staged;
  }
  view(ref: Pick<InstalledRecord, "type" | "version" | "dir" | "signingTime">): ContentView {
    const held =
      this.staged.get(`${ref.type}/${ref.dir}`) ??
      [this.current.get(ref.type), this.lkgs.get(ref.type)].find((h) => h?.record.dir === ref.dir);
    if (!held) throw new StoreError("STORE_VERSION_MISSING", `${ref.type} ${ref.dir} not held`);
    const read = (p: string) => {
      const b = held.files.get(p);
      if (!b) throw new StoreError("STORE_NO_FILE", `${p} not in ${ref.type} v${ref.version}`);
      return b;
    };
    return viewOverBytes({
      type: ref.type,
      version: ref.version,
      signingTime: ref.signingTime,
      files: [...held.files.keys()],
      read,
      readText: (p) => new TextDecoder().decode(read(p)),
    });
  }
  activate(staged: StagedContent): InstalledRecord {
    const key = `${staged.type}/${staged.dir}`;
    const held = this.staged.get(key);
    if (!held) throw new StoreError("STORE_NOT_STAGED", `${key} not staged`);
    if (this.isBad(staged.type, staged.version)) throw new StoreError("STORE_VERSION_BAD", `${key} is bad`);
    this.staged.delete(key);
    const previous = this.current.get(staged.type);
    if (previous) this.lkgs.set(staged.type, previous);
    held.record = { ...held.record, installedAt: this.now().toISOString() };
    this.current.set(staged.type, held);
    return held.record;
  }
  rollback(type: string): InstalledRecord {
    const target = this.lkgs.get(type);
    if (!target) throw new StoreError("STORE_NO_LKG", `${type}: no last-known-good`);
    const abandoned = this.current.get(type);
    this.current.set(type, target);
    if (abandoned) this.lkgs.set(type, abandoned);
    else this.lkgs.delete(type);
    return target.record;
  }
}

/** UpdateMemory without a disk: serials, cached index and ETag, loop bookkeeping. */
export class MemoryUpdateMemory {
  data: UpdateMemoryData = {
    schema: 1,
    groups: {},
    lastAttempt: null,
    lastSuccess: null,
    consecutiveFailures: 0,
    recentRejections: [],
  };
  private readonly cache = new Map<string, { index: Uint8Array; sig: Uint8Array; etag?: string }>();
  save(): void {}
  cachedIndex(group: string) {
    return this.cache.get(group);
  }
  cacheIndex(group: string, index: Uint8Array, sig: Uint8Array, etag: string | undefined): void {
    this.cache.set(group, { index, sig, ...(etag ? { etag } : {}) });
  }
}

/** The host's two-phase load, in process, without work directories. */
export class SimHost {
  private readonly live = new Map<string, { version: number; crashRate: number }>();
  constructor(private readonly registry: HandlerRegistry) {}
  private readonly caps = {
    log: { info() {}, warn() {} },
    events: { emit() {} },
    workDir: "/nonexistent",
  };
  async validate(type: string, view: ContentView): Promise<void> {
    await this.registry.require(type).validate(view);
  }
  async prepare(type: string, view: ContentView): Promise<Prepared> {
    return { type, version: view.version, live: await this.registry.require(type).load(view, this.caps) };
  }
  async commit(p: Prepared): Promise<void> {
    this.live.set(p.type, p.live as { version: number; crashRate: number });
  }
  async discard(): Promise<void> {}
  loaded(type: string) {
    return this.live.get(type);
  }
}

// ---------------------------------------------------------------- agent

export interface SimAgentOptions {
  id: string;
  group: string;
  tenant: string;
  /** Fixed per host in [0,1): the host crashes on content whose CRASH-RATE exceeds it. */
  susceptibility: number;
  transport: Transport;
  trust: TrustStore;
  now: () => Date;
  policy?: ContentPolicy;
  /** When set, heartbeats go there (fetch-compatible; the fleet endpoint's URL). */
  heartbeat?: { url: string; token: string; fetchImpl: typeof fetch };
  /** How long after going live a crashing handler has crash-looped and been rolled back. */
  crashDelayMs: number;
  /** This agent's own jitter source, so a seeded run replays exactly whatever order cycles finish in. */
  random?: () => number;
}

const quiet = new Logger({}, undefined, "error", false);
const registry = new HandlerRegistry().register(simHandler);

export class SimAgent {
  readonly events = new EventBus(16);
  readonly store: MemoryStore;
  readonly memory = new MemoryUpdateMemory();
  readonly host = new SimHost(registry);
  readonly heartbeat?: HeartbeatReporter;
  nextPollAt = 0;
  /** Sim time at which the live content's handler will have crash-looped. */
  crashAt: number | null = null;
  /** Every version this agent ever activated (for blast-radius counts). */
  readonly activated: { version: number; at: number }[] = [];
  private lastReport?: UpdateCycleReport;

  constructor(readonly opts: SimAgentOptions) {
    this.store = new MemoryStore(opts.now);
    if (opts.heartbeat) {
      this.heartbeat = new HeartbeatReporter(this, {
        url: opts.heartbeat.url,
        token: opts.heartbeat.token,
        tenant: opts.tenant,
        agentId: opts.id,
        fetchImpl: opts.heartbeat.fetchImpl,
        now: opts.now,
        urgentSpacingMs: 0,
      }).start();
    }
  }

  get version(): number | null {
    return this.store.installed(SIM_TYPE)?.version ?? null;
  }

  async cycle(
    limits = { indexMaxBytes: 1 << 20, timeoutMs: 30_000, minBytesPerSecond: 0 },
  ): Promise<UpdateCycleReport> {
    const report = await runUpdateCycle(
      {
        transport: this.opts.transport,
        trust: this.opts.trust,
        store: this.store,
        host: this.host,
        registry,
        memory: this.memory,
        policy: this.opts.policy,
        log: quiet,
        now: this.opts.now,
        limits,
        onRejection: ({ type: contentType, ...r }) =>
          this.events.emit("update-rejected", { ...r, contentType }),
        onInstalled: (e) => {
          const at = this.opts.now().getTime();
          this.activated.push({ version: e.version, at });
          this.events.emit("content-installed", {
            contentType: e.type,
            version: e.version,
            previousVersion: e.previousVersion,
          });
          const live = this.host.loaded(SIM_TYPE);
          this.crashAt =
            live && live.crashRate > this.opts.susceptibility ? at + this.opts.crashDelayMs : null;
        },
      },
      this.opts.group,
    );
    this.lastReport = report;
    this.events.emit("update-finished", { ok: report.ok, installed: report.installed.length });
    return report;
  }

  /** The crash loop the handler host would detect, then the agent's automatic rollback. */
  async crashLoop(): Promise<void> {
    this.crashAt = null;
    const current = this.store.installed(SIM_TYPE);
    if (!current) return;
    for (let i = 0; i < 3; i++)
      this.events.emit("handler-crashed", { contentType: SIM_TYPE, version: current.version });
    this.store.markBad(SIM_TYPE, current.version, "handler crash loop");
    const lkg = this.store.lkg(SIM_TYPE);
    if (!lkg) return;
    const view = this.store.view(lkg);
    await this.host.commit(await this.host.prepare(SIM_TYPE, view));
    this.store.rollback(SIM_TYPE);
    this.events.emit("content-rolled-back", {
      contentType: SIM_TYPE,
      from: current.version,
      to: lkg.version,
      automatic: true,
    });
  }

  status(): AgentStatus {
    const rec = this.store.installed(SIM_TYPE);
    const m = this.memory.data;
    const content: ContentInfo[] = [
      {
        type: SIM_TYPE,
        version: rec?.version ?? null,
        signingTime: rec?.signingTime ?? null,
        sha384: rec?.sha384 ?? null,
        installedAt: rec?.installedAt ?? null,
        lkgVersion: this.store.lkg(SIM_TYPE)?.version ?? null,
        handlerState: rec ? "loaded" : "not-installed",
        badVersions: this.store.badVersions(SIM_TYPE),
      },
    ];
    const red = m.consecutiveFailures >= 3;
    return {
      agent: { version: "sim", commit: "sim", pid: 0, startedAt: "", uptimeSeconds: 0 },
      health: red ? "red" : this.lastReport && !this.lastReport.ok ? "amber" : "green",
      healthReasons: [],
      update: {
        repo: this.opts.transport.describe,
        group: this.opts.group,
        lastAttempt: m.lastAttempt,
        lastSuccess: m.lastSuccess,
        nextRun: null,
        lastSerial: m.groups[this.opts.group]?.lastSerial ?? null,
        consecutiveFailures: m.consecutiveFailures,
      },
      content,
      lastErrors: [],
    };
  }
}

// ---------------------------------------------------------------- fleet driver

export interface FleetSimOptions {
  start: number;
  stepMs: number;
  schedule: SchedulePolicy;
  random: () => number;
  /** Cycles run at once within one step (they share the step's instant). */
  concurrency: number;
}

/**
 * Steps a fake clock; at each step runs the cycles and crash loops that are
 * due, then the caller's hook (release scheduler, operator). All agents in a
 * step see the step's time: a cycle takes no simulated time.
 */
export class FleetSim {
  now: number;
  readonly agents: SimAgent[] = [];
  private readonly due = new Map<number, SimAgent[]>();
  private crashing: SimAgent[] = [];
  cycles = 0;

  constructor(private readonly opts: FleetSimOptions) {
    this.now = opts.start;
  }

  readonly clock = (): Date => new Date(this.now);

  private slot(t: number): number {
    return Math.ceil((t - this.opts.start) / this.opts.stepMs);
  }

  add(agent: SimAgent, firstPollAt: number): void {
    this.agents.push(agent);
    this.schedule(agent, firstPollAt);
  }

  private schedule(agent: SimAgent, at: number): void {
    agent.nextPollAt = at;
    const s = this.slot(at);
    const list = this.due.get(s) ?? [];
    list.push(agent);
    this.due.set(s, list);
  }

  /** Steps until `end`, or until the hook returns true. */
  async runUntil(
    end: number,
    onStep?: (now: number) => Promise<boolean | undefined> | boolean | undefined,
  ): Promise<void> {
    while (this.now < end) {
      this.now += this.opts.stepMs;
      const s = this.slot(this.now);
      const batch = this.due.get(s) ?? [];
      this.due.delete(s);
      await pool(batch, this.opts.concurrency, async (a) => {
        const r = await a.cycle();
        this.cycles++;
        if (a.crashAt !== null) this.crashing.push(a);
        const delay = nextDelaySeconds(
          this.opts.schedule,
          { consecutiveFailures: a.memory.data.consecutiveFailures, retryAfterSeconds: r.retryAfterSeconds },
          a.opts.random ?? this.opts.random,
        );
        this.schedule(a, this.now + delay * 1000);
      });
      const crashing = this.crashing.filter((a) => a.crashAt !== null && a.crashAt <= this.now);
      this.crashing = this.crashing.filter((a) => a.crashAt !== null && a.crashAt > this.now);
      for (const a of crashing) await a.crashLoop();
      // Heartbeats are fire-and-forget in the agent; the step waits for them so the scheduler sees them.
      await Promise.all([...batch, ...crashing].map((a) => a.heartbeat?.flush()));
      if ((await onStep?.(this.now)) === true) return;
    }
  }
}

export async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

// ---------------------------------------------------------------- operator

/**
 * The release engineer of the seed's process, automated for simulations:
 * promotes through a manual gate once the current group has soaked and the
 * engine judges it healthy — and never otherwise.
 */
export async function operatorStep(engine: ReleaseEngine, now: number): Promise<string | null> {
  const view = await engine.status();
  const r = view.releases.find((x) => x.status === "active");
  if (!r) return null;
  const i = r.groups.findLastIndex((g) => g.publishedAt !== null);
  const current = r.groups[i];
  const next = r.groups[i + 1];
  if (!current || !next || engine.gate(next.name) !== "manual") return null;
  const soaked = current.soakEndsAt !== null && now >= Date.parse(current.soakEndsAt);
  if (!soaked || current.verdict !== "healthy") return null;
  await engine.promote({ type: r.type });
  return next.name;
}
