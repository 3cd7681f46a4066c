/**
 * A staged-rollout scenario over a simulated fleet: a repository, the release
 * engine with its fleet endpoint (`serveRelease`, real HTTP, fake clock),
 * simulated agents spread over the release groups, and an automated release
 * engineer for the manual gates. Runs a release to its end (completed or
 * aborted) and measures what the closing note needs.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TrustStore } from "../../core/crypto/cms.ts";
import { sha256Hex } from "../../core/crypto/digest.ts";
import { KEY_FILES, loadSigningKeys } from "../../core/crypto/keys.ts";
import { packDirectory } from "../../core/package/pack.ts";
import { publish } from "../../core/repo/publish.ts";
import type { Transport } from "../../core/update/transport.ts";
import { parseReleaseConfig, type ReleaseConfigInput } from "../../fleet/config.ts";
import { isAffected } from "../../fleet/health.ts";
import { type ReleaseServer, serveRelease } from "../../fleet/server.ts";
import { FleetSim, operatorStep, SIM_TYPE, SimAgent, seededRandom, simPayload } from "./sim.ts";

export interface ScenarioGroup {
  name: string;
  promote: "manual" | "auto";
  soakMinutes: number;
  agents: number;
}

export interface ScenarioOptions {
  root: string;
  /** Key directory made by initKeys. */
  keysDir: string;
  groups: ScenarioGroup[];
  health: NonNullable<ReleaseConfigInput["health"]>;
  seed: number;
  /** The transport agent i uses (a folder, or HTTP to nginx). */
  transport: (repo: string, i: number) => Transport;
  stepMs?: number;
  /** The scheduler runs every this many steps, and in any step that brought a troubled heartbeat. */
  tickEverySteps?: number;
  concurrency?: number;
  crashDelayMs?: number;
  pollSeconds?: number;
  start?: number;
}

export interface ReleaseOutcome {
  release: string;
  version: number;
  crashRate: number;
  status: string;
  abortReason: string | null;
  startedAt: number;
  /** Completion or abort time. */
  endedAt: number | null;
  /** When every active agent of every group ran the version (healthy releases). */
  allAgentsAt: number | null;
  lastGroupPublishedAt: number | null;
  groupsReached: string[];
  /** Agents that ever activated the version, per group. */
  installedBy: Record<string, number>;
  installedTotal: number;
  fleet: number;
  firstTroubleAt: number | null;
  abortedAt: number | null;
  cycles: number;
}

const TENANT = "sim";
const TOKEN = "simulation-token-0123456789abcdef";

export class FleetScenario {
  readonly sim: FleetSim;
  readonly repo: string;
  private trouble = false;

  private constructor(
    readonly opts: ScenarioOptions,
    readonly server: ReleaseServer,
    sim: FleetSim,
    repo: string,
  ) {
    this.sim = sim;
    this.repo = repo;
  }

  static async create(opts: ScenarioOptions): Promise<FleetScenario> {
    const repo = join(opts.root, "repo");
    mkdirSync(repo, { recursive: true });
    const start = opts.start ?? Date.now();
    const config = parseReleaseConfig(
      {
        repo,
        keys: opts.keysDir,
        stateDir: join(opts.root, "release-state"),
        groups: opts.groups.map(({ agents: _n, ...g }) => g),
        health: opts.health,
        // One vendor tenant reporting unsigned (the compatibility mode): the simulation measures
        // rollout dynamics, not identity; forgery and signing are fleet/identity/forgery.test.ts.
        fleet: {
          tenants: { [TENANT]: { tokenSha256: sha256Hex(new TextEncoder().encode(TOKEN)), vendor: true } },
          identity: { allowUnenrolled: true },
        },
      },
      join(opts.root, "release.json"),
    );
    const random = seededRandom(opts.seed);
    const sim = new FleetSim({
      start,
      stepMs: opts.stepMs ?? 60_000,
      schedule: { intervalSeconds: opts.pollSeconds ?? 3600, jitter: 0.1, maxBackoffSeconds: 6 * 3600 },
      random,
      concurrency: opts.concurrency ?? 32,
    });
    let scenario: FleetScenario | undefined;
    const server = await serveRelease({
      config,
      port: 0,
      now: sim.clock,
      autoTick: false,
      alerter: { send() {}, flush: async () => {} },
      onTrouble: () => scenario?.noteTrouble(),
    });
    scenario = new FleetScenario(opts, server, sim, repo);
    const trust = (await TrustStore.load(join(opts.keysDir, KEY_FILES.rootCert))).withVerificationMemo();
    const heartbeatUrl = new URL("/fleet/heartbeat", server.url).href;
    let i = 0;
    for (const g of opts.groups) {
      for (let k = 0; k < g.agents; k++, i++) {
        const agent = new SimAgent({
          id: `sim-${String(i).padStart(6, "0")}`,
          group: g.name,
          tenant: TENANT,
          susceptibility: random(),
          transport: opts.transport(repo, i),
          trust,
          now: sim.clock,
          heartbeat: { url: heartbeatUrl, token: TOKEN, fetchImpl: fetch },
          crashDelayMs: opts.crashDelayMs ?? 2 * 60_000,
          random: seededRandom(opts.seed * 7919 + i),
        });
        // First polls spread over the first interval, as a fleet that has been running for a while.
        sim.add(agent, start + random() * (opts.pollSeconds ?? 3600) * 1000);
      }
    }
    return scenario;
  }

  private noteTrouble(): void {
    this.trouble = true;
  }

  async pack(version: number, crashRate: number): Promise<Uint8Array> {
    const dir = join(this.opts.root, `src-${version}`);
    mkdirSync(dir, { recursive: true });
    for (const [name, data] of Object.entries(simPayload(version, crashRate)))
      writeFileSync(join(dir, name), data);
    return packDirectory({
      type: SIM_TYPE,
      version,
      keys: await loadSigningKeys(this.opts.keysDir),
      dir,
      now: new Date(this.sim.now),
    });
  }

  /** Publishes `version` to every group directly (the fleet's baseline) and lets every agent take it. */
  async baseline(version: number, hours = 1.2): Promise<void> {
    const bytes = await this.pack(version, 0);
    for (const g of this.opts.groups) {
      await publish({
        repo: this.repo,
        group: g.name,
        keys: this.opts.keysDir,
        packageBytes: bytes,
        now: new Date(this.sim.now),
      });
    }
    await this.sim.runUntil(this.sim.now + hours * 3600_000);
  }

  /** Starts a release and steps until it completes or aborts (or the deadline passes). */
  async release(version: number, crashRate: number, deadlineHours: number): Promise<ReleaseOutcome> {
    const engine = this.server.engine;
    const file = join(this.opts.root, `${SIM_TYPE}-${version}.tar`);
    writeFileSync(file, await this.pack(version, crashRate));
    const startedAt = this.sim.now;
    this.trouble = false;
    await engine.start({ type: SIM_TYPE, version, packageFile: file });
    const id = `${SIM_TYPE}-${version}`;
    let steps = 0;
    let endedAt: number | null = null;
    let allAgentsAt: number | null = null;
    let firstAffectedAt: number | null = null;
    const every = this.opts.tickEverySteps ?? 5;
    const cyclesBefore = this.sim.cycles;
    const deadline = startedAt + deadlineHours * 3600_000;
    const active = async () => (await engine.status()).releases.find((r) => r.id === id);
    await this.sim.runUntil(deadline, async (now) => {
      if (endedAt !== null) {
        if (allAgentsAt === null && crashRate === 0 && this.sim.agents.every((a) => a.version === version))
          allAgentsAt = now;
        return allAgentsAt !== null;
      }
      steps++;
      if (firstAffectedAt === null && this.trouble) {
        for (const a of await this.server.fleet.list()) {
          if (isAffected(a, SIM_TYPE, version)) {
            firstAffectedAt = now;
            break;
          }
        }
      }
      if (this.trouble || steps % every === 0) {
        this.trouble = false;
        await this.server.tick();
        await operatorStep(engine, now);
        // A release only changes state in a tick; looking after each one is enough.
        const r = await active();
        if (r && r.status !== "active") endedAt = now;
      }
      if (allAgentsAt === null && crashRate === 0 && this.sim.agents.every((a) => a.version === version))
        allAgentsAt = now;
      return endedAt !== null && (crashRate > 0 || allAgentsAt !== null);
    });
    const r = await active();
    const installedBy: Record<string, number> = {};
    for (const g of this.opts.groups) installedBy[g.name] = 0;
    for (const a of this.sim.agents) {
      if (a.activated.some((x) => x.version === version))
        installedBy[a.opts.group] = (installedBy[a.opts.group] ?? 0) + 1;
    }
    const published =
      r?.groups.filter((g) => g.publishedAt).map((g) => Date.parse(g.publishedAt ?? "")) ?? [];
    return {
      release: id,
      version,
      crashRate,
      status: r?.status ?? "unknown",
      abortReason: r?.abort?.reason ?? null,
      startedAt,
      endedAt,
      allAgentsAt,
      lastGroupPublishedAt: published.length ? Math.max(...published) : null,
      groupsReached: r?.groups.filter((g) => g.publishedAt).map((g) => g.name) ?? [],
      installedBy,
      installedTotal: Object.values(installedBy).reduce((a, b) => a + b, 0),
      fleet: this.sim.agents.length,
      firstTroubleAt: firstAffectedAt,
      abortedAt: r?.abort ? Date.parse(r.abort.at) : null,
      cycles: this.sim.cycles - cyclesBefore,
    };
  }

  async stop(): Promise<void> {
    await Promise.all(this.sim.agents.map((a) => a.heartbeat?.stop()));
    await this.server.stop();
  }
}
