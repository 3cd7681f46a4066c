/**
 * The release engine: carries out what the operator asks (`start`,
 * `promote`, `abort`) and what the pure scheduler (plan.ts) decides on each
 * `tick`, against the repository with the real publisher. Every step is
 * recorded in the durable state before and after its side effect, so a
 * restart resumes rather than repeats or forgets.
 *
 * Taking a group back after an abort is revert.ts; what status shows is
 * views.ts; staged packages are staged.ts. Groups the release never reached
 * are not touched and never list the bad version.
 */
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { TrustStore } from "../core/crypto/cms.ts";
import { KEY_FILES } from "../core/crypto/keys.ts";
import { describeError, UpdateError } from "../core/errors.ts";
import { log } from "../core/log.ts";
import { openPackage, readPackage } from "../core/package/open.ts";
import type { IndexEntry, PreviousEntry } from "../core/repo/index-format.ts";
import { publish, readRepoIndex, resign } from "../core/repo/publish.ts";
import type { ReleaseAlerter } from "./alerts.ts";
import type { ReleaseConfig } from "./config.ts";
import type { FleetStore } from "./db/fleet-store.ts";
import type { FleetDb } from "./db/index.ts";
import type { GroupHealth } from "./health.ts";
import { openReleaseDb } from "./open-db.ts";
import {
  type Action,
  currentGroupIndex,
  groupConfig,
  type HealthSnapshot,
  judgeGroup,
  type Note,
  plan,
  type RepoFacts,
} from "./plan.ts";
import { type RevertContext, revertGroup } from "./revert.ts";
import { readPackageFile, readStaged, stagePackage } from "./staged.ts";
import { appendHealth, appendLog, type PackageRef, type Release, type ReleaseState } from "./state.ts";
import { type ReleaseStatusView, statusView } from "./views.ts";

const logger = log.child({ component: "release" });
/** Health samples closer together than this are not recorded (the console's resolution). */
const SAMPLE_SPACING_MS = 60_000;

export interface EngineOptions {
  config: ReleaseConfig;
  now?: () => Date;
  /** Where release state and the fleet live; default: the SQLite file under the state dir (opened on first use). */
  db?: FleetDb;
  /** Health from another fleet view than the database's (in-memory simulations and unit tests). */
  fleet?: FleetStore;
  alerter?: ReleaseAlerter;
}

export interface TickResult {
  actions: Action[];
  notes: Note[];
  /** Actions that failed (each is retried on the next tick); the others still ran. */
  errors: { action: Action; code: string; message: string }[];
  /** Set when another replica holds the planner lock and this tick did nothing. */
  skipped?: string;
}

export class ReleaseEngine {
  private chain: Promise<unknown> = Promise.resolve();
  private readonly now: () => Date;
  private dbp: Promise<FleetDb> | undefined;

  constructor(private readonly opts: EngineOptions) {
    this.now = opts.now ?? (() => new Date());
    if (opts.db) this.dbp = Promise.resolve(opts.db);
  }

  /** The database, opened (and migrated) on first use when none was given. */
  db(): Promise<FleetDb> {
    this.dbp ??= openReleaseDb({
      stateDir: this.config.paths.stateDir,
      maxAgents: this.config.fleet.maxAgents,
    });
    return this.dbp;
  }

  /** Closes a database this engine opened itself. */
  async close(): Promise<void> {
    if (this.opts.db || !this.dbp) return;
    await (await this.dbp.catch(() => undefined))?.close();
  }

  get config(): ReleaseConfig {
    return this.opts.config;
  }

  private async fleet(): Promise<FleetStore> {
    return this.opts.fleet ?? (await this.db()).fleet;
  }

  /**
   * One mutation at a time in this process, and under the planner lock
   * across processes and replicas. Every persist is its own transaction:
   * a holder killed mid-step leaves the last persisted step, and the next
   * holder resumes from it. `waitMs: 0` gives up at once when another
   * replica holds the lock (undefined).
   */
  private mutate<T>(
    fn: (state: ReleaseState, persist: () => Promise<void>) => Promise<T>,
    lock: { waitMs?: number } = {},
  ): Promise<T> {
    const run = this.chain.then(async () => {
      const db = await this.db();
      const body = async () => {
        const state = await db.releases.load();
        const persist = () => db.releases.save(state);
        const result = await fn(state, persist);
        await persist();
        return result;
      };
      if (lock.waitMs === 0) {
        const r = await db.lock.tryWith(body, { waitMs: 0 });
        return r ? r.value : (undefined as T);
      }
      return db.lock.with(body, lock);
    });
    this.chain = run.catch(() => {});
    return run;
  }

  // ---------------------------------------------------------------- start

  /** Stages the package and publishes it to the first group. */
  async start(opts: { type: string; version: number; packageFile: string }): Promise<Release> {
    const now = this.now();
    const bytes = readPackageFile(opts.packageFile);
    const trust = await TrustStore.load(join(this.config.paths.keys, KEY_FILES.rootCert));
    const pkg = await openPackage(bytes, trust, { file: opts.packageFile, now, expectedType: opts.type });
    if (pkg.manifest.version !== opts.version) {
      throw new UpdateError(
        "REL_VERSION_MISMATCH",
        `${opts.packageFile}: package is ${pkg.manifest.type} v${pkg.manifest.version}, not v${opts.version}`,
        { file: opts.packageFile },
      );
    }
    return this.mutate(async (state, persist) => {
      const active = state.releases.find((r) => r.type === opts.type && r.status === "active");
      if (active) {
        throw new UpdateError(
          "REL_ACTIVE_EXISTS",
          `release ${active.id} of ${opts.type} is still active; promote it to the end or abort it first`,
        );
      }
      this.checkNewer(state, opts.type, opts.version, pkg.signingTime, opts.packageFile);
      const ref = stagePackage(this.config.paths.stateDir, opts.type, opts.version, bytes, pkg.signingTime);
      const id = `${opts.type}-${opts.version}`;
      const release: Release = {
        id,
        type: opts.type,
        version: opts.version,
        package: ref,
        status: "active",
        startedAt: now.toISOString(),
        finishedAt: null,
        groups: this.config.groups.map((g) => ({ name: g.name, publishedAt: null, revertedAt: null })),
        abort: null,
        log: [],
        health: [],
      };
      appendLog(release, now, "started", `${opts.type} v${opts.version} (${ref.sha384.slice(0, 16)}…)`);
      state.releases.push(release);
      await persist();
      await this.promoteTo(release, 0, "release start", persist);
      return release;
    });
  }

  /**
   * A new release must be installable by every group: newer than anything a
   * group lists or has listed (including an abort's re-signed version, R10),
   * and signed no earlier than the packages groups run (R11).
   */
  private checkNewer(
    state: ReleaseState,
    type: string,
    version: number,
    signingTime: Date,
    file: string,
  ): void {
    let highest = 0;
    let latestSigned = 0;
    const signedAt = new Map<string, number>();
    for (const r of state.releases) {
      if (r.type !== type) continue;
      highest = Math.max(highest, r.version, r.abort?.revertVersion ?? 0);
      signedAt.set(r.package.sha384, Date.parse(r.package.signingTime));
      for (const ref of Object.values(r.abort?.reverts ?? {}))
        signedAt.set(ref.sha384, Date.parse(ref.signingTime));
    }
    for (const g of this.config.groups) {
      const listed = readRepoIndex(this.config.paths.repo, g.name)?.content[type];
      if (!listed) continue;
      highest = Math.max(highest, listed.version);
      latestSigned = Math.max(latestSigned, signedAt.get(listed.sha384) ?? this.packageCreated(listed));
    }
    if (version <= highest) {
      throw new UpdateError(
        "REL_VERSION_NOT_NEWER",
        `${file}: ${type} v${version} is not newer than v${highest}, which groups list or have listed; agents would refuse it (R10) — pack v${highest + 1} or later`,
        { file },
      );
    }
    if (signingTime.getTime() < latestSigned) {
      throw new UpdateError(
        "REL_SIGNED_TOO_EARLY",
        `${file}: signed ${signingTime.toISOString()}, before content groups already run (${new Date(latestSigned).toISOString()}); agents would refuse it (R11) — pack it again`,
        { file },
      );
    }
  }

  private packageCreated(entry: IndexEntry): number {
    try {
      const bytes = readFileSync(join(this.config.paths.repo, entry.path));
      // The CMS signingTime agents compare (R11) has whole seconds; `created` has milliseconds.
      return Math.floor(Date.parse(readPackage(bytes, { file: entry.path }).manifest.created) / 1000) * 1000;
    } catch {
      return 0;
    }
  }

  /** Intent (what the group had) → publish → done, each recorded, so a resumed publish is exact. */
  private async promoteTo(
    r: Release,
    index: number,
    reason: string,
    persist: () => Promise<void>,
  ): Promise<void> {
    const g = r.groups[index];
    if (!g) throw new UpdateError("REL_NOTHING_TO_PROMOTE", `release ${r.id} has no group #${index + 1}`);
    if (g.before === undefined) {
      const listed = readRepoIndex(this.config.paths.repo, g.name)?.content[r.type];
      g.before = listed
        ? listed.sha384 === r.package.sha384
          ? (listed.previous ?? null)
          : stripPrevious(listed)
        : null;
      await persist();
    }
    const now = this.now();
    const index_ = await publish({
      repo: this.config.paths.repo,
      group: g.name,
      keys: this.config.paths.keys,
      packageBytes: readStaged(this.config.paths.stateDir, r.package),
      now,
      expiresInDays: this.config.expiresDays,
    });
    g.publishedAt = now.toISOString();
    appendLog(r, now, "published", `${reason}; index serial ${index_.serial}`, g.name);
    logger.info("release published to group", {
      release: r.id,
      group: g.name,
      reason,
      serial: index_.serial,
    });
    await persist();
  }

  // ---------------------------------------------------------------- promote / abort

  private pick(state: ReleaseState, type: string | undefined): Release {
    const active = state.releases.filter(
      (r) => r.status === "active" && (type === undefined || r.type === type),
    );
    if (active.length === 1) return active[0]!;
    if (active.length === 0) {
      throw new UpdateError("REL_NO_ACTIVE", type ? `no active release of ${type}` : "no active release");
    }
    throw new UpdateError(
      "REL_AMBIGUOUS",
      `${active.length} active releases (${active.map((r) => r.id).join(", ")}); name the content type`,
    );
  }

  /** Moves the release to its next group. Refused while the current group is unhealthy, unless forced. */
  async promote(opts: { type?: string; force?: boolean } = {}): Promise<Release> {
    return this.mutate(async (state, persist) => {
      const r = this.pick(state, opts.type);
      const i = currentGroupIndex(r);
      const next = r.groups[i + 1];
      if (!next) {
        throw new UpdateError("REL_NOTHING_TO_PROMOTE", `release ${r.id} has reached its last group already`);
      }
      const current = r.groups[i];
      if (current) {
        const j = judgeGroup(
          r,
          current.name,
          this.config,
          await this.healthSnapshot(state, await this.fleet(), this.now()),
        );
        if (j.verdict === "unhealthy" && !opts.force) {
          throw new UpdateError(
            "REL_UNHEALTHY",
            `not promoting ${r.id} to ${next.name}: ${j.reason} (--force overrides)`,
          );
        }
      }
      await this.promoteTo(r, i + 1, opts.force ? "manual promotion (forced)" : "manual promotion", persist);
      return r;
    });
  }

  async abort(opts: { type?: string; reason: string }): Promise<Release> {
    return this.mutate(async (state, persist) => {
      const r = this.pick(state, opts.type);
      await this.performAbort(r, opts.reason, "operator", persist);
      return r;
    });
  }

  private async performAbort(
    r: Release,
    reason: string,
    by: "operator" | "health",
    persist: () => Promise<void>,
  ): Promise<void> {
    const now = this.now();
    r.status = "aborted";
    r.finishedAt = now.toISOString();
    r.abort = { at: now.toISOString(), reason, by, revertVersion: r.version + 1, reverts: {} };
    appendLog(r, now, "aborted", `${by}: ${reason}`);
    await persist();
    const reached = r.groups.filter((g) => g.publishedAt || g.before !== undefined);
    for (const g of reached) await revertGroup(this.reverter(), r, g, persist);
    this.opts.alerter?.send({
      kind: "release-aborted",
      at: now.toISOString(),
      release: r.id,
      type: r.type,
      version: r.version,
      reason,
      by,
      revertedGroups: reached.map((g) => g.name),
      untouchedGroups: r.groups.filter((g) => !reached.includes(g)).map((g) => g.name),
    });
  }

  // ---------------------------------------------------------------- tick

  /** Runs the scheduler once: record health, plan, carry out. Driven by `release tick` and `serve`. */
  async tick(opts: { waitMs?: number } = {}): Promise<TickResult> {
    const result = await this.mutate(async (state, persist) => {
      const now = this.now();
      const health = await this.healthSnapshot(state, await this.fleet(), now);
      this.recordHealth(state, health, now);
      const p = plan(state, this.config, now, health, this.repoFacts());
      const errors: TickResult["errors"] = [];
      for (const a of p.actions) {
        try {
          await this.apply(state, a, now, persist);
        } catch (e) {
          // One group's publish failing must not keep another release's abort from happening.
          const d = describeError(e);
          errors.push({ action: a, code: d.code, message: d.message });
          logger.error("release action failed; retried next tick", { action: a.kind, ...d });
        }
        await persist();
      }
      return { actions: p.actions, notes: p.notes, errors };
    }, opts);
    return (
      result ?? {
        actions: [],
        notes: [],
        errors: [],
        skipped: `another replica runs the planner (${(await (await this.db()).lock.holder()) ?? "lock held"})`,
      }
    );
  }

  private async apply(
    state: ReleaseState,
    a: Action,
    now: Date,
    persist: () => Promise<void>,
  ): Promise<void> {
    if (a.kind === "resign") {
      const index = await resign({
        repo: this.config.paths.repo,
        group: a.group,
        keys: this.config.paths.keys,
        now,
        expiresInDays: this.config.expiresDays,
      });
      logger.info("group index re-signed before expiry", {
        group: a.group,
        serial: index.serial,
        expires: index.expires,
      });
      return;
    }
    const r = state.releases.find((x) => x.id === a.release);
    if (!r) return;
    switch (a.kind) {
      case "promote":
        await this.promoteTo(
          r,
          r.groups.findIndex((g) => g.name === a.group),
          a.reason,
          persist,
        );
        return;
      case "abort":
        await this.performAbort(r, a.reason, "health", persist);
        return;
      case "revert": {
        const g = r.groups.find((x) => x.name === a.group);
        if (g) await revertGroup(this.reverter(), r, g, persist);
        return;
      }
      case "complete":
        r.status = "completed";
        r.finishedAt = now.toISOString();
        appendLog(r, now, "completed", a.reason);
        this.opts.alerter?.send({
          kind: "release-completed",
          at: now.toISOString(),
          release: r.id,
          type: r.type,
          version: r.version,
          reason: a.reason,
        });
        return;
    }
  }

  private repoFacts(): RepoFacts {
    const indexExpires: Record<string, number> = {};
    for (const g of this.config.groups) {
      const index = readRepoIndex(this.config.paths.repo, g.name);
      if (index) indexExpires[g.name] = Date.parse(index.expires);
    }
    return { indexExpires };
  }

  async healthSnapshot(state: ReleaseState, fleet: FleetStore, now: Date): Promise<HealthSnapshot> {
    const snap: HealthSnapshot = {};
    for (const r of state.releases) {
      if (r.status !== "active") continue;
      const perGroup: Record<string, GroupHealth> = {};
      for (const g of r.groups) {
        if (!g.publishedAt) continue;
        perGroup[g.name] = await fleet.groupHealth({
          type: r.type,
          version: r.version,
          group: g.name,
          since: Date.parse(g.publishedAt),
          now: now.getTime(),
          activeWindowMs: this.config.health.activeWindowMinutes * 60_000,
        });
      }
      snap[r.id] = perGroup;
    }
    return snap;
  }

  private recordHealth(state: ReleaseState, health: HealthSnapshot, now: Date): void {
    for (const r of state.releases) {
      for (const [group, h] of Object.entries(health[r.id] ?? {})) {
        const last = r.health.findLast((s) => s.group === group);
        if (last && now.getTime() - Date.parse(last.at) < SAMPLE_SPACING_MS) continue;
        appendHealth(r, {
          at: now.toISOString(),
          group,
          agents: h.agents,
          exposed: h.exposed,
          affected: h.affected,
        });
      }
    }
  }

  // ---------------------------------------------------------------- status

  async status(): Promise<ReleaseStatusView> {
    const now = this.now();
    const db = await this.db();
    const state = await db.releases.load();
    const fleet = await this.fleet();
    const health = await this.healthSnapshot(state, fleet, now);
    return statusView({
      config: this.config,
      state,
      activeByGroup: await fleet.activeByGroup(
        now.getTime() - this.config.health.activeWindowMinutes * 60_000,
      ),
      health,
      notes: plan(state, this.config, now, health).notes,
      now,
    });
  }

  /** The gate of each group, for status output. */
  gate(name: string): "manual" | "auto" {
    return groupConfig(this.config, name).promote;
  }

  /** What taking a group back (revert.ts) needs of the engine. */
  private reverter(): RevertContext {
    return { config: this.config, now: this.now };
  }

  /** Where staged packages live, for messages. */
  stagedPath(ref: PackageRef): string {
    return relative(process.cwd(), join(this.config.paths.stateDir, ref.file));
  }
}

function stripPrevious(entry: IndexEntry): PreviousEntry {
  const { previous: _older, ...rest } = entry;
  return rest;
}
