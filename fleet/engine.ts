import { join, relative } from "node:path";
import { TrustStore } from "../core/crypto/cms.ts";
import { KEY_FILES } from "../core/crypto/keys.ts";
import { describeError, UpdateError } from "../core/errors.ts";
import { log } from "../core/log.ts";
import { openPackage } from "../core/package/open.ts";
import type { IndexEntry, PreviousEntry } from "../core/repo/index-format.ts";
import { publish, readRepoIndex, resign } from "../core/repo/publish.ts";
import type { ReleaseAlerter } from "./alerts.ts";
import type { ReleaseConfig } from "./config.ts";
import type { FleetStore } from "./db/fleet-store.ts";
import type { FleetDb } from "./db/index.ts";
import { DbAuditLog } from "./identity/db-store.ts";
import type { AuditLog, AuditRecord } from "./identity/store.ts";
import { checkLiveGate, modelsIn } from "./live-gate.ts";
import { openReleaseDb } from "./open-db.ts";
import { checkClose, checkManualPromotion } from "./operator.ts";
import {
  type Action,
  currentGroupIndex,
  groupConfig,
  type HealthSnapshot,
  type Note,
  plan,
  type RepoFacts,
} from "./plan.ts";
import { checkNewer, healthSnapshot, recordHealth } from "./release-checks.ts";
import { type RevertContext, revertGroup } from "./revert.ts";
import { readPackageFile, readStaged, stagePackage } from "./staged.ts";
import { appendLog, type PackageRef, type Release, type ReleaseState } from "./state.ts";
import { groupsFor } from "./type-rules.ts";
import { type ReleaseStatusView, statusView } from "./views.ts";

const logger = log.child({ component: "release" });

export interface EngineOptions {
  config: ReleaseConfig;
  now?: () => Date;
  /** Where release state and the fleet live; default: the SQLite file under the state dir (opened on first use). */
  db?: FleetDb;
  /** Health from another fleet view than the database's (in-memory simulations and unit tests). */
  fleet?: FleetStore;
  alerter?: ReleaseAlerter;
  /** Where operator and scheduler actions are audited (O4); default: the audit table of the database. */
  audit?: AuditLog;
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

  private async auditLog(): Promise<AuditLog> {
    return this.opts.audit ?? new DbAuditLog((await this.db()).driver);
  }

  /** O4: who did what to which release, when and why. */
  private async audit(
    r: Release,
    actor: string,
    action: AuditRecord["action"],
    reason: string,
    group?: string,
  ) {
    await (await this.auditLog()).appendAudit({
      at: this.now().toISOString(),
      actor,
      action,
      release: r.id,
      reason,
      ...(group ? { group } : {}),
    });
  }

  /** The audit trail, oldest first. */
  async auditTrail(): Promise<AuditRecord[]> {
    return (await this.auditLog()).audit();
  }

  /** The database, opened (and migrated) on first use when none was given. */
  db(): Promise<FleetDb> {
    this.dbp ??= openReleaseDb({
      stateDir: this.config.paths.stateDir,
      maxAgents: this.config.fleet.maxAgents,
    });
    return this.dbp;
  }

  /** Closes a database this engine opened itself (`close` is the operator's release close). */
  async closeDb(): Promise<void> {
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
  async start(opts: {
    type: string;
    version: number;
    packageFile: string;
    actor?: string;
  }): Promise<Release> {
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
      checkNewer(this.config, state, opts.type, opts.version, pkg.signingTime, opts.packageFile);
      const models = modelsIn(pkg.files);
      await checkLiveGate(
        this.config,
        (await this.db()).driver,
        opts.type,
        models ?? [],
        state.releases,
        now,
        opts.packageFile,
      );
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
        // T1: the type's own group list (extra groups, manual gates), fleet/type-rules.ts.
        groups: groupsFor(this.config, opts.type).map((g) => ({
          name: g.name,
          publishedAt: null,
          revertedAt: null,
        })),
        ...(models ? { models } : {}),
        abort: null,
        log: [],
        health: [],
      };
      appendLog(release, now, "started", `${opts.type} v${opts.version} (${ref.sha384.slice(0, 16)}…)`);
      state.releases.push(release);
      await persist();
      await this.audit(
        release,
        opts.actor ?? "cli",
        "start",
        `${opts.type} v${opts.version}`,
        release.groups[0]?.name,
      );
      await this.promoteTo(release, 0, "release start", persist);
      return release;
    });
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

  /** Moves the release to its next group: only soaked and healthy (O1), unless forced with a reason (O2). */
  async promote(
    opts: { type?: string; force?: boolean; reason?: string; actor?: string } = {},
  ): Promise<Release> {
    return this.mutate(async (state, persist) => {
      const r = this.pick(state, opts.type);
      const i = currentGroupIndex(r);
      const next = r.groups[i + 1];
      if (!next) {
        throw new UpdateError("REL_NOTHING_TO_PROMOTE", `release ${r.id} has reached its last group already`);
      }
      const now = this.now();
      const j = checkManualPromotion(
        r,
        i,
        this.config,
        await this.healthSnapshot(state, await this.fleet(), now),
        now,
        opts,
      );
      const why = opts.reason?.trim() || j?.reason || "manual promotion";
      await this.audit(r, opts.actor ?? "cli", opts.force ? "force-promote" : "promote", why, next.name);
      await this.promoteTo(
        r,
        i + 1,
        opts.force ? `manual promotion (forced: ${why})` : "manual promotion",
        persist,
      );
      return r;
    });
  }

  async abort(opts: { type?: string; reason: string; actor?: string }): Promise<Release> {
    return this.mutate(async (state, persist) => {
      const r = this.pick(state, opts.type);
      await this.audit(r, opts.actor ?? "cli", "abort", opts.reason);
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

  /** O3: finishes an active release that cannot move, leaving every group as it is. */
  async close(opts: { type?: string; reason: string; actor?: string }): Promise<Release> {
    return this.mutate(async (state) => {
      const r = this.pick(state, opts.type);
      checkClose(r, opts.reason);
      const now = this.now();
      await this.audit(r, opts.actor ?? "cli", "close", opts.reason.trim());
      r.status = "closed";
      r.finishedAt = now.toISOString();
      appendLog(r, now, "closed", opts.reason.trim());
      this.opts.alerter?.send({
        kind: "release-closed",
        at: now.toISOString(),
        release: r.id,
        type: r.type,
        version: r.version,
        reason: opts.reason.trim(),
      });
      return r;
    });
  }

  // ---------------------------------------------------------------- tick

  /** Runs the scheduler once: record health, plan, carry out. Driven by `release tick` and `serve`. */
  async tick(opts: { waitMs?: number } = {}): Promise<TickResult> {
    const result = await this.mutate(async (state, persist) => {
      const now = this.now();
      const health = await this.healthSnapshot(state, await this.fleet(), now);
      recordHealth(state, health, now);
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
      case "stalled":
        appendLog(r, now, "stalled", a.reason, a.group);
        await this.audit(r, "scheduler", "stalled", a.reason, a.group);
        logger.warn("release group cannot reach its sample", {
          release: r.id,
          group: a.group,
          reason: a.reason,
        });
        this.opts.alerter?.send({
          kind: "release-stalled",
          at: now.toISOString(),
          release: r.id,
          type: r.type,
          version: r.version,
          group: a.group,
          reason: a.reason,
        });
        return;
      case "promote":
        if (a.reason !== "resuming an interrupted publish")
          await this.audit(r, "scheduler", "promote", a.reason, a.group);
        await this.promoteTo(
          r,
          r.groups.findIndex((g) => g.name === a.group),
          a.reason,
          persist,
        );
        return;
      case "abort":
        await this.audit(r, "scheduler", "abort", a.reason);
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

  healthSnapshot(state: ReleaseState, fleet: FleetStore, now: Date): Promise<HealthSnapshot> {
    return healthSnapshot(state, fleet, now, this.config);
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
