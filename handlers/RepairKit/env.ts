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
 */

import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { dirname, isAbsolute, join, normalize, sep } from "node:path";
import { z } from "zod";
import type { AgentStatus } from "../../core/agent/api.ts";
import { pidAlive } from "../../core/agent/lock.ts";
import type { AgentConfig } from "../../core/config.ts";
import { statePaths } from "../../core/config.ts";
import { sha384Hex } from "../../core/crypto/digest.ts";
import { describeError, HandlerError } from "../../core/errors.ts";
import { atomicWriteFile, atomicWriteJson } from "../../core/fsutil.ts";
import { GROUP_NAME_RE, RepoIndexSchema } from "../../core/repo/index-format.ts";
import { ContentStore } from "../../core/store/store.ts";

export const FACTS_FILE = "facts.json";

/** Installation facts the supervisor (or the CLI) writes for the repair host, which cannot read the config. */
export const RepairFactsSchema = z
  .object({
    schema: z.literal(1),
    stateDir: z.string().min(1),
    trustPath: z.string().min(1),
    configFile: z.string().nullable(),
    update: z
      .object({
        enabled: z.boolean(),
        intervalSeconds: z.number(),
        maxBackoffSeconds: z.number(),
        group: z.string(),
        repo: z.string(),
      })
      .strict(),
    agentUid: z.number().int().nonnegative(),
    agentGid: z.number().int().nonnegative(),
    writtenAt: z.string(),
    /** Verified by the writer (trust.ts), which has the CMS verifier the repair host does not load. */
    trust: z
      .object({
        trustSha256: z.string().nullable(),
        pem: z.object({ ok: z.boolean(), certs: z.number(), error: z.string().optional() }).strict(),
        caches: z.array(
          z
            .object({
              group: z.string(),
              ok: z.boolean(),
              problem: z.string().nullable(),
              serial: z.number().nullable(),
              sha384: z.string().nullable(),
              verified: z.boolean().nullable(),
            })
            .strict(),
        ),
        verifies: z.boolean().nullable(),
      })
      .strict()
      .optional(),
  })
  .strict();
export type RepairFacts = z.infer<typeof RepairFactsSchema>;
export type TrustFacts = NonNullable<RepairFacts["trust"]>;

export function factsFromConfig(config: AgentConfig, configFile: string | null): RepairFacts {
  return {
    schema: 1,
    stateDir: config.stateDir,
    trustPath: config.update.trust,
    configFile,
    update: {
      enabled: config.update.enabled,
      intervalSeconds: config.update.intervalSeconds,
      maxBackoffSeconds: config.update.maxBackoffSeconds,
      group: config.update.group,
      repo: config.update.repo,
    },
    agentUid: process.getuid?.() ?? 0,
    agentGid: process.getgid?.() ?? 0,
    writtenAt: new Date().toISOString(),
  };
}

export function writeFacts(workDir: string, facts: RepairFacts): void {
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  atomicWriteJson(join(workDir, FACTS_FILE), facts, 0o600);
}

export function readFacts(workDir: string): RepairFacts | null {
  try {
    return RepairFactsSchema.parse(JSON.parse(readFileSync(join(workDir, FACTS_FILE), "utf8")));
  } catch {
    return null;
  }
}

export type RepairMode = "in-cycle" | "online" | "offline";

/** Agent actions a fix may request; carried out after the checks. */
export interface AgentActions {
  status?(): Promise<AgentStatus | null>;
  update(): Promise<{ ok: boolean; detail: string }>;
  rollback(type: string): Promise<{ ok: boolean; detail: string }>;
}

export interface QueuedAction {
  action: "update" | "rollback";
  arg?: string;
}

const MAX_READ = 1024 * 1024;
const MAX_LIST = 1000;
const LUA_SAFE = (v: unknown) => (v === undefined ? null : v);

export type CachedIndexFacts = TrustFacts["caches"][number];

export function sha256File(path: string): string | null {
  try {
    return createHash("sha256").update(readFileSync(path)).digest("hex");
  } catch {
    return null;
  }
}

/**
 * A trust bundle's shape without the X.509 stack: PEM blocks, all
 * CERTIFICATE, each decoding to a DER SEQUENCE. Enough to tell "missing or
 * garbage" from "looks like roots"; trust.ts does the real verification.
 */
export function pemCertificates(text: string): TrustFacts["pem"] {
  const blocks = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g)];
  if (blocks.length === 0) return { ok: false, certs: 0, error: "holds no certificates" };
  for (const [i, b] of blocks.entries()) {
    if (b[1] !== "CERTIFICATE")
      return { ok: false, certs: 0, error: `block ${i + 1} is ${b[1]}, not CERTIFICATE` };
    const der = Buffer.from((b[2] ?? "").replace(/\s+/g, ""), "base64");
    if (der.length < 64 || der[0] !== 0x30)
      return { ok: false, certs: 0, error: `certificate ${i + 1} does not parse` };
  }
  return { ok: true, certs: blocks.length };
}

export function cacheGroups(indexCacheDir: string): string[] {
  try {
    return readdirSync(indexCacheDir).sort();
  } catch {
    return [];
  }
}

/** A cached index's files are present and parse (signature not checked here). */
export function inspectCacheStructure(indexCacheDir: string, group: string): CachedIndexFacts {
  const dir = join(indexCacheDir, group);
  const base = { group, serial: null, sha384: null, verified: null };
  if (!GROUP_NAME_RE.test(group)) return { ...base, ok: false, problem: "not a group name" };
  try {
    if (!lstatSync(dir).isDirectory()) return { ...base, ok: false, problem: "not a directory" };
    const index = new Uint8Array(readFileSync(join(dir, "index.json")));
    readFileSync(join(dir, "index.p7s"));
    JSON.parse(readFileSync(join(dir, "meta.json"), "utf8"));
    const parsed = RepoIndexSchema.safeParse(JSON.parse(new TextDecoder().decode(index)));
    if (!parsed.success) return { ...base, ok: false, problem: "index.json is not a valid index" };
    return {
      group,
      ok: true,
      problem: null,
      serial: parsed.data.serial,
      sha384: sha384Hex(index),
      verified: null,
    };
  } catch (e) {
    return { ...base, ok: false, problem: (e as Error).message };
  }
}

export class RepairEnv {
  readonly queued: QueuedAction[] = [];
  private status: AgentStatus | null = null;
  private cache: CachedIndexFacts[] = [];
  private trustVerifies: boolean | null = null;
  private trustFacts: TrustFacts | null = null;
  private updateEnabled: boolean | undefined;
  private readonly paths: ReturnType<typeof statePaths>;

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
    this.cache = this.trustFacts.caches.map((c) => ({ ...c }));
    this.trustVerifies = this.trustFacts.verifies;
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

  // ------------------------------------------------------------ paths

  /** A state-relative path, refusing absolute paths, `..`, and symlinks on the way. */
  private resolve(rel: unknown): string {
    if (typeof rel !== "string" || rel.includes("\0") || isAbsolute(rel)) {
      throw new HandlerError("HND_REPAIR_PATH", `${String(rel)}: paths are relative to the state directory`);
    }
    const clean = normalize(rel);
    if (clean === ".." || clean.startsWith(`..${sep}`) || clean.split(sep).includes("..")) {
      throw new HandlerError("HND_REPAIR_PATH", `${rel}: leaves the state directory`);
    }
    const full = clean === "." ? this.facts.stateDir : join(this.facts.stateDir, clean);
    // Every existing component below the state dir must be a real directory, not a link elsewhere.
    let dir = dirname(full);
    while (dir.length > this.facts.stateDir.length) {
      if (existsSync(dir) && lstatSync(dir).isSymbolicLink()) {
        throw new HandlerError("HND_REPAIR_PATH", `${rel}: ${dir} is a symlink`);
      }
      dir = dirname(dir);
    }
    return full;
  }

  private noLink(full: string, what: string): void {
    if (existsSync(full) && lstatSync(full).isSymbolicLink()) {
      throw new HandlerError("HND_REPAIR_PATH", `${what}: ${full} is a symlink; not following it`);
    }
  }

  // ------------------------------------------------------------ fs (rules: fs.*)

  stat(rel: unknown): Record<string, unknown> | null {
    const full = this.resolve(rel);
    try {
      const s = lstatSync(full);
      return {
        type: s.isFile() ? "file" : s.isDirectory() ? "dir" : s.isSymbolicLink() ? "link" : "other",
        mode: s.mode & 0o7777,
        uid: s.uid,
        gid: s.gid,
        size: s.size,
        mtime: Math.floor(s.mtimeMs),
      };
    } catch {
      return null;
    }
  }

  list(rel: unknown): string[] | null {
    const full = this.resolve(rel);
    try {
      return readdirSync(full).sort().slice(0, MAX_LIST);
    } catch {
      return null;
    }
  }

  read(rel: unknown, max?: unknown): string | null {
    const full = this.resolve(rel);
    this.noLink(full, "fs.read");
    try {
      const data = readFileSync(full);
      const n = typeof max === "number" ? Math.min(max, MAX_READ) : MAX_READ;
      return new TextDecoder().decode(data.subarray(0, n));
    } catch {
      return null;
    }
  }

  mkdir(rel: unknown, mode: unknown): void {
    const full = this.resolve(rel);
    const m = typeof mode === "number" ? mode : 0o700;
    mkdirSync(full, { recursive: true, mode: m });
    chmodSync(full, m);
    lchownSync(full, this.facts.agentUid, this.facts.agentGid);
  }

  chmod(rel: unknown, mode: unknown): void {
    const full = this.resolve(rel);
    this.noLink(full, "fs.chmod");
    if (typeof mode !== "number" || mode < 0 || mode > 0o7777)
      throw new HandlerError("HND_REPAIR_ARGS", "fs.chmod: bad mode");
    chmodSync(full, mode);
  }

  chown(rel: unknown, uid: unknown, gid: unknown): void {
    const full = this.resolve(rel);
    if (typeof uid !== "number" || typeof gid !== "number")
      throw new HandlerError("HND_REPAIR_ARGS", "fs.chown: bad ids");
    lchownSync(full, uid, gid);
  }

  /** Moves a file or directory aside into STATE/quarantine/ and returns its new relative path. */
  quarantine(rel: unknown): string {
    const full = this.resolve(rel);
    if (full === this.facts.stateDir)
      throw new HandlerError("HND_REPAIR_PATH", "cannot quarantine the state directory");
    const qdir = join(this.facts.stateDir, "quarantine");
    mkdirSync(qdir, { recursive: true, mode: 0o700 });
    const stamp = this.now().toISOString().replace(/[:.]/g, "-");
    const name = `${stamp}-${String(rel).replace(/[/\\]/g, "_")}`;
    renameSync(full, join(qdir, name));
    return `quarantine/${name}`;
  }

  remove(rel: unknown): void {
    const full = this.resolve(rel);
    if (full === this.facts.stateDir)
      throw new HandlerError("HND_REPAIR_PATH", "cannot remove the state directory");
    rmSync(full, { recursive: true, force: true });
  }

  // ------------------------------------------------------------ update state and lock (rules: state.*)

  updateState(): Record<string, unknown> {
    const file = this.paths.updateState;
    if (!existsSync(file)) return { present: false, ok: true };
    try {
      const data = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
      if (data.schema !== 1 || typeof data.groups !== "object" || data.groups === null) {
        return { present: true, ok: false, error: "not an update state (schema or groups missing)" };
      }
      return {
        present: true,
        ok: true,
        consecutiveFailures: LUA_SAFE(data.consecutiveFailures),
        lastSuccess: LUA_SAFE(data.lastSuccess) ?? false,
        lastAttempt: LUA_SAFE(data.lastAttempt) ?? false,
      };
    } catch (e) {
      return { present: true, ok: false, error: (e as Error).message };
    }
  }

  /**
   * Quarantines an unreadable update-state.json and writes a fresh one that
   * keeps the rollback floor: per group the highest index serial either
   * salvaged from the broken file's text or read from a cached index whose
   * signature still verifies. What cannot be recovered (history, backoff)
   * starts over.
   */
  resetUpdateState(): Record<string, unknown> {
    const file = this.paths.updateState;
    let salvaged: Record<string, number> = {};
    let quarantined: string | null = null;
    if (existsSync(file)) {
      const text = readFileSync(file).toString("latin1");
      salvaged = salvageSerials(text);
      quarantined = this.quarantine("update-state.json");
    }
    const groups: Record<string, { lastSerial: number; lastIndexSha384: string }> = {};
    const sources: Record<string, string> = {};
    for (const c of this.cache) {
      if (c.verified && c.serial !== null && c.sha384) {
        groups[c.group] = { lastSerial: c.serial, lastIndexSha384: c.sha384 };
        sources[c.group] = "verified cached index";
      }
    }
    for (const [group, serial] of Object.entries(salvaged)) {
      const have = groups[group];
      // Without the index bytes we know only that `serial` was accepted: keep serial-1 as the floor,
      // so that index (and anything newer) is accepted again and anything older is still refused.
      if (!have || have.lastSerial < serial - 1) {
        groups[group] = { lastSerial: Math.max(0, serial - 1), lastIndexSha384: "" };
        sources[group] = "salvaged from the broken file";
      }
    }
    atomicWriteJson(
      file,
      {
        schema: 1,
        groups,
        lastAttempt: null,
        lastSuccess: null,
        consecutiveFailures: 0,
        recentRejections: [],
      },
      0o600,
    );
    lchownSync(file, this.facts.agentUid, this.facts.agentGid);
    return {
      quarantined: quarantined ?? false,
      preserved: Object.fromEntries(Object.entries(groups).map(([g, v]) => [g, v.lastSerial])),
      sources,
    };
  }

  lock(): Record<string, unknown> {
    const file = this.paths.lock;
    if (!existsSync(file)) return { present: false };
    let raw = "";
    try {
      raw = readFileSync(file, "utf8").slice(0, 64);
    } catch (e) {
      return { present: true, readable: false, error: (e as Error).message };
    }
    const pid = Number(raw.trim());
    if (!Number.isInteger(pid) || pid <= 0)
      return { present: true, readable: true, pid: false, alive: false, raw };
    const alive = pidAlive(pid);
    return { present: true, readable: true, pid, alive, agent: alive ? looksLikeAgent(pid) : false, raw };
  }

  /** Removes agent.lock only when no live agent can own it. */
  removeStaleLock(): boolean {
    const l = this.lock();
    if (!l.present) return false;
    if (this.mode !== "offline")
      throw new HandlerError("HND_REPAIR_REFUSED", "the agent is running: its lock is not stale");
    if (l.alive && l.agent !== false) {
      throw new HandlerError("HND_REPAIR_REFUSED", `agent.lock is held by live process ${l.pid}`);
    }
    rmSync(this.paths.lock, { force: true });
    return true;
  }

  indexCache(): CachedIndexFacts[] {
    return this.cache;
  }

  clearIndexCache(group: unknown): void {
    if (typeof group !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(group)) {
      throw new HandlerError("HND_REPAIR_ARGS", "state.clear_index_cache: bad group name");
    }
    rmSync(join(this.paths.indexCache, group), { recursive: true, force: true });
    this.cache = this.cache.filter((c) => c.group !== group);
  }

  // ------------------------------------------------------------ trust store (rules: trust.*)

  private get trustBackup(): string {
    return join(this.facts.stateDir, "repair", "trust-backup.pem");
  }

  trust(): Record<string, unknown> {
    const path = this.facts.trustPath;
    const out: Record<string, unknown> = { path, present: false, verifiesIndex: this.trustVerifies ?? false };
    const backup = this.trustBackup;
    out.backup = existsSync(backup) ? { present: true, certs: countCerts(backup) } : { present: false };
    try {
      const s = lstatSync(path);
      Object.assign(out, {
        present: true,
        type: s.isFile() ? "file" : s.isSymbolicLink() ? "link" : "other",
      });
      Object.assign(out, { mode: s.mode & 0o7777, uid: s.uid, gid: s.gid });
      const pem = pemCertificates(readFileSync(path, "utf8"));
      out.ok = pem.ok;
      out.certs = pem.certs;
      if (pem.error) out.error = pem.error;
    } catch {
      out.ok = false;
      out.error = "missing";
    }
    return out;
  }

  /** Keeps a copy of the trust store that has verified the agent's own cached index. */
  trustBackupNow(): void {
    if (!this.trustVerifies) {
      throw new HandlerError(
        "HND_REPAIR_REFUSED",
        "trust store not proven (it verified no cached index); no backup taken",
      );
    }
    mkdirSync(dirname(this.trustBackup), { recursive: true, mode: 0o700 });
    atomicWriteFile(this.trustBackup, readFileSync(this.facts.trustPath), 0o600);
  }

  /** Restores the backup, only over a trust store that is missing or unusable. */
  trustRestore(): void {
    const t = this.trust();
    if (t.ok) throw new HandlerError("HND_REPAIR_REFUSED", "the trust store is usable; not overwriting it");
    if (!existsSync(this.trustBackup))
      throw new HandlerError("HND_REPAIR_REFUSED", "no trust store backup to restore");
    const backup = pemCertificates(readFileSync(this.trustBackup, "utf8"));
    if (!backup.ok)
      throw new HandlerError("HND_REPAIR_REFUSED", `the trust store backup is unusable: ${backup.error}`);
    mkdirSync(dirname(this.facts.trustPath), { recursive: true, mode: 0o755 });
    if (t.present && t.type !== "file") rmSync(this.facts.trustPath, { force: true });
    atomicWriteFile(this.facts.trustPath, readFileSync(this.trustBackup), 0o644);
    lchownSync(this.facts.trustPath, this.facts.agentUid, this.facts.agentGid);
  }

  /** Nobody but the agent's user may change the trust store. */
  trustTighten(): void {
    const path = this.facts.trustPath;
    this.noLink(path, "trust.tighten");
    chmodSync(path, (statSync(path).mode & 0o777 & ~0o022) | 0o444);
    lchownSync(path, this.facts.agentUid, this.facts.agentGid);
  }

  // ------------------------------------------------------------ content (rules: content.*)

  content(): Record<string, unknown>[] {
    const store = new ContentStore(this.facts.stateDir);
    return store.types().map((type) => {
      try {
        const rec = store.installed(type);
        const lkg = safe(() => store.lkg(type));
        if (!rec) return { type, version: false, ok: true, lkgVersion: lkg?.version ?? false, problems: [] };
        const report = store.verifyInstalled(type, rec);
        return {
          type,
          version: rec.version,
          lkgVersion: lkg?.version ?? false,
          ok: report?.ok ?? true,
          problems: (report?.problems ?? []).slice(0, 10).map((p) => `${p.path}: ${p.reason}`),
        };
      } catch (e) {
        return { type, version: false, ok: false, lkgVersion: false, problems: [describeError(e).message] };
      }
    });
  }

  /**
   * Makes the next update cycle fetch `type` again: back to last-known-good
   * when it verifies (without marking the abandoned version bad: it was
   * damaged on disk, not defective), else the current pointer is
   * quarantined. The fix then requests an update.
   */
  contentRefetch(type: unknown): string {
    if (typeof type !== "string" || !/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(type)) {
      throw new HandlerError("HND_REPAIR_ARGS", "content.refetch: bad content type");
    }
    const store = new ContentStore(this.facts.stateDir);
    const lkg = safe(() => store.lkg(type));
    if (lkg && store.verifyInstalled(type, lkg)?.ok) {
      store.rollback(type);
      return `current set back to v${lkg.version}`;
    }
    const moved = this.quarantine(`content/${type}/current.json`);
    return `current pointer moved to ${moved}`;
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

function safe<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch {
    return null;
  }
}

function countCerts(file: string): number {
  try {
    return pemCertificates(readFileSync(file, "utf8")).certs;
  } catch {
    return 0;
  }
}

/** `"<group>": { … "lastSerial": N …}` pairs that survive in a damaged file's text. */
export function salvageSerials(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(
    /"([a-z0-9][a-z0-9-]{0,63})"\s*:\s*\{[^{}]*?"lastSerial"\s*:\s*(\d{1,15})/g,
  )) {
    const serial = Number(m[2]);
    out[m[1]!] = Math.max(out[m[1]!] ?? 0, serial);
  }
  return out;
}

/** A live process holding the lock that is not an Outpost agent (pid reuse after a crash). */
function looksLikeAgent(pid: number): boolean | null {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
    return /\bagent\b|outpost/.test(cmd);
  } catch {
    return null;
  }
}
