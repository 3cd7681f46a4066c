/**
 * What RepairKit rules can see and touch: the agent's own installation,
 * nothing else. Every path a rule names is relative to the state
 * directory and resolved without following symlinks out of it; the trust
 * store and the config file are reached only through their own narrow
 * operations. Changes are careful: files are moved to STATE/quarantine/
 * rather than deleted, and the update state is reset only after keeping
 * what rollback protection depends on (docs/rules.md, "RepairKit").
 *
 * The same environment serves the repair host (in the update cycle, or
 * `agent run-repair` against a running agent) and the offline CLI (agent
 * stopped, state possibly broken); only `mode` and the agent actions differ.
 *
 * This file is the environment's face — gathering facts (prepare), the
 * `facts` table rules see, the config and agent-action requests — and
 * hands each group of rule operations to its own file: env-files.ts
 * (fs.*), env-state.ts (state.*), env-trust.ts (trust.*), env-content.ts
 * (content.*). The facts schema is facts.ts; inspection without the X.509
 * stack is inspect.ts.
 */

import { copyFileSync, readFileSync, statSync } from "node:fs";
import type { AgentStatus } from "../../core/agent/api.ts";
import { HandlerError } from "../../core/errors.ts";
import { atomicWriteFile } from "../../core/fsutil.ts";
import { statePaths } from "../../core/state-paths.ts";
import { EnvContent } from "./env-content.ts";
import { type EnvContext, EnvFiles } from "./env-files.ts";
import { EnvState } from "./env-state.ts";
import { EnvTrust } from "./env-trust.ts";
import type {
  AgentActions,
  CachedIndexFacts,
  QueuedAction,
  RepairFacts,
  RepairMode,
  TrustFacts,
} from "./facts.ts";
import { cacheGroups, inspectCacheStructure, pemCertificates, sha256File } from "./inspect.ts";

export class RepairEnv {
  readonly queued: QueuedAction[] = [];
  private status: AgentStatus | null = null;
  private trustFacts: TrustFacts | null = null;
  private updateEnabled: boolean | undefined;
  private readonly paths: ReturnType<typeof statePaths>;
  /** What the operation groups share; `prepared` is refreshed by prepare(). */
  private readonly ctx: EnvContext;
  private readonly files: EnvFiles;
  private readonly state: EnvState;
  private readonly trustOps: EnvTrust;
  private readonly contentOps: EnvContent;

  constructor(
    readonly facts: RepairFacts,
    readonly mode: RepairMode,
    private readonly opts: {
      now?: () => Date;
      /** Fresh trust facts (trust.ts); without it the host falls back on facts.trust. */
      inspectTrust?: () => Promise<TrustFacts>;
    } = {},
  ) {
    this.paths = statePaths(facts.stateDir);
    const now = () => this.now();
    this.files = new EnvFiles(facts, now);
    this.ctx = {
      facts,
      mode,
      paths: this.paths,
      files: this.files,
      now,
      prepared: { cache: [], trustVerifies: null },
    };
    this.state = new EnvState(this.ctx);
    this.trustOps = new EnvTrust(this.ctx);
    this.contentOps = new EnvContent(this.ctx);
  }

  private now(): Date {
    return this.opts.now ? this.opts.now() : new Date();
  }

  /** Gathers what needs async work (signatures, the agent's status) before the checks run. */
  async prepare(actions: AgentActions | undefined): Promise<void> {
    this.status = null;
    // A fix may have changed the config file since the facts were taken.
    if (this.facts.configFile) {
      try {
        const json = JSON.parse(readFileSync(this.facts.configFile, "utf8")) as {
          update?: { enabled?: unknown };
        };
        this.updateEnabled = json.update?.enabled !== false;
      } catch {
        this.updateEnabled = undefined;
      }
    }
    if (actions?.status) {
      try {
        this.status = await actions.status();
      } catch {
        this.status = null;
      }
    }
    this.trustFacts = await this.currentTrustFacts();
    this.ctx.prepared = {
      cache: this.trustFacts.caches.map((c) => ({ ...c })),
      trustVerifies: this.trustFacts.verifies,
    };
  }

  /**
   * The writer's verification while the trust store is byte-for-byte the one
   * it verified; otherwise what can be seen without the X.509 stack (shape of
   * the PEM, structure of the caches, signatures unknown).
   */
  private async currentTrustFacts(): Promise<TrustFacts> {
    if (this.opts.inspectTrust) return this.opts.inspectTrust();
    const sha = sha256File(this.facts.trustPath);
    const given = this.facts.trust;
    if (given && given.trustSha256 === sha) return given;
    let pem: TrustFacts["pem"];
    try {
      pem = pemCertificates(readFileSync(this.facts.trustPath, "utf8"));
    } catch {
      pem = { ok: false, certs: 0, error: "missing" };
    }
    return {
      trustSha256: sha,
      pem,
      caches: cacheGroups(this.paths.indexCache).map((g) => inspectCacheStructure(this.paths.indexCache, g)),
      verifies: pem.ok ? null : false,
    };
  }

  /** The facts table rules see as `facts`. */
  luaFacts(dryRun: boolean): Record<string, unknown> {
    const s = this.status;
    return {
      stateDir: this.facts.stateDir,
      trustPath: this.facts.trustPath,
      configFile: this.facts.configFile ?? false,
      update: { ...this.facts.update, enabled: this.updateEnabled ?? this.facts.update.enabled },
      agentUid: this.facts.agentUid,
      agentGid: this.facts.agentGid,
      mode: this.mode,
      online: this.mode !== "offline",
      dryRun,
      now: this.now().getTime(),
      status: s
        ? {
            health: s.health,
            nextRun: s.update.nextRun ?? false,
            lastAttempt: s.update.lastAttempt ?? false,
            lastSuccess: s.update.lastSuccess ?? false,
            consecutiveFailures: s.update.consecutiveFailures,
            nextRunMs: s.update.nextRun ? Date.parse(s.update.nextRun) : false,
            lastAttemptMs: s.update.lastAttempt ? Date.parse(s.update.lastAttempt) : false,
          }
        : false,
    };
  }

  // ------------------------------------------------------------ fs (rules: fs.*), env-files.ts

  stat(rel: unknown): Record<string, unknown> | null {
    return this.files.stat(rel);
  }
  list(rel: unknown): string[] | null {
    return this.files.list(rel);
  }
  read(rel: unknown, max?: unknown): string | null {
    return this.files.read(rel, max);
  }
  mkdir(rel: unknown, mode: unknown): void {
    this.files.mkdir(rel, mode);
  }
  chmod(rel: unknown, mode: unknown): void {
    this.files.chmod(rel, mode);
  }
  chown(rel: unknown, uid: unknown, gid: unknown): void {
    this.files.chown(rel, uid, gid);
  }
  quarantine(rel: unknown): string {
    return this.files.quarantine(rel);
  }
  remove(rel: unknown): void {
    this.files.remove(rel);
  }

  // ------------------------------------------------------------ update state and lock (rules: state.*), env-state.ts

  updateState(): Record<string, unknown> {
    return this.state.updateState();
  }
  resetUpdateState(): Record<string, unknown> {
    return this.state.resetUpdateState();
  }
  lock(): Record<string, unknown> {
    return this.state.lock();
  }
  removeStaleLock(): boolean {
    return this.state.removeStaleLock();
  }
  indexCache(): CachedIndexFacts[] {
    return this.state.indexCache();
  }
  clearIndexCache(group: unknown): void {
    this.state.clearIndexCache(group);
  }

  // ------------------------------------------------------------ trust store (rules: trust.*), env-trust.ts

  trust(): Record<string, unknown> {
    return this.trustOps.trust();
  }
  trustBackupNow(): void {
    this.trustOps.trustBackupNow();
  }
  trustRestore(): void {
    this.trustOps.trustRestore();
  }
  trustTighten(): void {
    this.trustOps.trustTighten();
  }

  // ------------------------------------------------------------ content (rules: content.*), env-content.ts

  content(): Record<string, unknown>[] {
    return this.contentOps.content();
  }
  contentRefetch(type: unknown): string {
    return this.contentOps.contentRefetch(type);
  }

  // ------------------------------------------------------------ config (rules: config.*)

  /** Turns the update loop back on in the agent's config file (a backup is kept beside it). */
  enableUpdates(): Record<string, unknown> {
    const file = this.facts.configFile;
    if (!file) {
      throw new HandlerError(
        "HND_REPAIR_REFUSED",
        "the agent's config file is not known (run: agent run-repair --config FILE)",
      );
    }
    const text = readFileSync(file, "utf8");
    const json = JSON.parse(text) as { update?: Record<string, unknown> };
    json.update = { ...(json.update ?? {}), enabled: true };
    const backup = `${file}.repair-${this.now().toISOString().replace(/[:.]/g, "-")}.bak`;
    copyFileSync(file, backup);
    atomicWriteFile(file, `${JSON.stringify(json, null, 2)}\n`, statSync(file).mode & 0o777);
    return { file, backup };
  }

  request(action: unknown, arg: unknown): void {
    if (action !== "update" && action !== "rollback")
      throw new HandlerError("HND_REPAIR_ARGS", "unknown agent action");
    if (action === "update" && this.queued.some((q) => q.action === "update")) return;
    this.queued.push({ action, ...(typeof arg === "string" ? { arg } : {}) });
  }
}
