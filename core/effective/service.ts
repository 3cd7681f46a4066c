/**
 * The effective-configuration service in the supervisor: it fetches the
 * tenant bundle in the update cycle (conditional GET, B1–B5), hands the
 * policy documents to the content types that turn policy into overlays
 * (RemapperRules, in the unprivileged `config` host group) and asks the
 * ones that carry a flags supplement (Flags) for theirs, then resolves and
 * applies the result here — the hosts only compute, the supervisor decides.
 *
 * Features read `current()` and `flags.enabled(name)`, and `subscribe` to the
 * keys they use; they are called only when one of those keys changes.
 * Failures are per rule file: each shows in `agent status` (health reason
 * `policy:<file>`) and as a `policy-rule-failed` event, and never touches
 * another file's values.
 */

import type { AgentConfig } from "../config.ts";
import { configSource, parseAgentConfig } from "../config.ts";
import type { Trust } from "../crypto/verify.ts";
import { describeError } from "../errors.ts";
import type { HealthBoard } from "../health/reasons.ts";
import type { Logger } from "../log.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";
import type { Transport } from "../update/transport.ts";
import { keyMatches } from "./allow-list.ts";
import {
  bundlePath,
  bundleSigPath,
  MAX_BUNDLE_BYTES,
  type PolicyBundle,
  parseBundle,
  verifyBundle,
} from "./bundle.ts";
import { type FlagRow, type FlagsApi, resolveFlags } from "./flags.ts";
import type { FollowerStatus } from "./follow.ts";
import { applyGates, FEATURE_GATES, type GateRow } from "./gates.ts";
import {
  type BaseConfig,
  changedKeys,
  flatten,
  type Overlay,
  type OverlayCandidate,
  type Resolution,
  resolveEffective,
} from "./resolver.ts";
import {
  type Failure,
  OverlaySchema,
  type Persisted,
  readBundleBytes,
  readLocalDocuments,
  readPersisted,
  writeBundle,
  writePersisted,
} from "./state.ts";

/** Credentials never leave the process through `agent config show` (fleet.token, query.results.http.token, …). */
const SECRET_KEY_RE = /(^|\.)(token|password|secret)$/i;
const redact = (key: string, value: unknown) =>
  SECRET_KEY_RE.test(key) && value != null ? "(redacted)" : value;

/** Manifest roles (HandlerManifest.contributes) the service asks for. */
export const ROLE_OVERLAYS = "config.overlays";
export const ROLE_FLAGS = "config.flags";

/** What an overlay contributor's `remap` returns (validated here: the host is not trusted). */
export const RemapResultSchema = lazySchema(() =>
  z.strictObject({
    version: z.int(),
    files: z.array(
      z.discriminatedUnion("ok", [
        z.strictObject({ file: z.string(), ok: z.literal(true), values: OverlaySchema.shape.values }),
        z.strictObject({
          file: z.string(),
          ok: z.literal(false),
          error: z.strictObject({
            code: z.string(),
            message: z.string(),
            rule: z.optional(z.string()),
            document: z.optional(z.string()),
            line: z.optional(z.int()),
          }),
        }),
      ]),
    ),
  }),
);
export type RemapResult = z.infer<typeof RemapResultSchema>;

export const SupplementResultSchema = lazySchema(() =>
  z.strictObject({ version: z.int(), flags: z.record(z.string(), z.enum(["off", "available"])) }),
);

export interface DocumentInput {
  name: string;
  version: number;
  xml: string;
  source: "fleet" | "local";
}

export interface EffectiveDeps {
  config: AgentConfig;
  /** Handler call into its host (the agent's `call`). */
  call(type: string, method: string, args: unknown): Promise<unknown>;
  /** Loaded content types whose handler declares `role`. */
  contributors(role: string): string[];
  emit(type: string, fields?: Record<string, unknown>): void;
  health: HealthBoard;
  log: Logger;
  now(): Date;
}

export interface ConfigChange {
  key: string;
  before: unknown;
  after: unknown;
}

type Subscriber = { patterns: string[]; fn: (changes: ConfigChange[], config: AgentConfig) => void };

export interface SyncContext {
  transport: Transport;
  trust: Trust;
  timeoutMs: number;
}

/** The agent.json layer: what loadConfig recorded, else "explicit = differs from the default". */
export function baseOf(config: AgentConfig): BaseConfig {
  const src = configSource(config);
  if (src) return { input: src.input, file: src.file };
  const defaults = flatten(parseAgentConfig({ stateDir: config.stateDir }));
  const values = flatten(config);
  const explicit = Object.keys(values).filter(
    (k) => JSON.stringify(values[k]) !== JSON.stringify(defaults[k]),
  );
  return { input: config as unknown as Record<string, unknown>, explicit };
}

/** state.json without its timestamps: what decides whether it needs writing. */
const persistedKey = (p: Persisted) =>
  JSON.stringify({ ...p, appliedAt: undefined, failures: p.failures.map((f) => ({ ...f, at: undefined })) });

export class EffectiveConfigService {
  private persisted: Persisted;
  private resolution: Resolution;
  private flagRows: FlagRow[] = [];
  private gateRows: GateRow[] = [];
  private readonly subscribers = new Set<Subscriber>();
  private readonly flagListeners = new Map<string, Set<(enabled: boolean) => void>>();
  private readonly base: BaseConfig;
  private savedKey: string;
  readonly flags: FlagsApi;
  /** Services following the effective config (follow.ts) register their status here. */
  readonly followers = new Map<string, () => FollowerStatus<unknown>>();

  constructor(private readonly deps: EffectiveDeps) {
    this.base = baseOf(deps.config);
    this.persisted = readPersisted(deps.config.stateDir, (m, f) => deps.log.warn(m, f));
    this.savedKey = persistedKey(this.persisted);
    this.flagRows = this.computeFlags().rows;
    this.resolution = this.gate(
      resolveEffective(
        this.base,
        this.persisted.overlays.map((o) => ({ file: o.file, previous: o })),
      ),
    );
    this.flags = {
      enabled: (flag) => this.flagRows.find((r) => r.flag === flag)?.enabled ?? false,
      onChange: (flag, fn) => {
        const set = this.flagListeners.get(flag) ?? new Set();
        this.flagListeners.set(flag, set);
        set.add(fn);
        return () => set.delete(fn);
      },
      list: () => this.flagRows.map((r) => ({ ...r })),
    };
  }

  /** The effective configuration now in force (feature gates applied). */
  current(): AgentConfig {
    return this.resolution.config;
  }

  /** Each feature gate: what configuration wants, what the flag lets through (gates.ts). */
  gates(): GateRow[] {
    return this.gateRows.map((r) => ({ ...r }));
  }

  /**
   * May a flag-gated feature run? Yes while no Flags supplement was ever accepted (gates not in
   * force), else only when the flag is on. For features an administrator can switch on outside
   * the config (`agent ips enable`): the config itself is already gated.
   */
  allows(flag: string): boolean {
    return this.persisted.supplement == null || this.flags.enabled(flag);
  }

  /** `agent status` → `effective`: flags, feature gates, and what each following service has in force. */
  status() {
    return {
      flags: Object.fromEntries(this.flagRows.map((r) => [r.flag, r.enabled])),
      gates: this.gates(),
      services: Object.fromEntries([...this.followers].map(([name, f]) => [name, f()])),
    };
  }

  /** Gates are in force once a Flags supplement has been accepted on this host (docs/policy.md). */
  private gate(resolution: Resolution): Resolution {
    const inForce = this.persisted.supplement != null;
    const enabled = (flag: string) => this.flagRows.find((r) => r.flag === flag)?.enabled ?? false;
    const gated = applyGates(resolution, inForce, enabled);
    this.gateRows = gated.rows;
    return gated.resolution;
  }

  /** Calls `fn` with the changed keys when any key matching `patterns` changes (`flags.<name>` for flags). */
  subscribe(patterns: string[], fn: Subscriber["fn"]): () => void {
    const s = { patterns, fn };
    this.subscribers.add(s);
    return () => this.subscribers.delete(s);
  }

  /** What `agent config show` and `agent flags` print. */
  snapshot() {
    return {
      values: Object.keys(this.resolution.values)
        .sort()
        .map((key) => ({
          key,
          value: redact(key, this.resolution.values[key]),
          origin: this.resolution.origins[key],
        })),
      overlays: this.persisted.overlays.map((o) => ({
        file: o.file,
        contentVersion: o.contentVersion ?? null,
        keys: o.values.map((v) => v.key),
      })),
      failures: this.persisted.failures,
      flags: this.flagRows,
      gates: this.gateRows,
      supplement: this.persisted.supplement
        ? { type: this.persisted.supplement.type, version: this.persisted.supplement.version }
        : null,
      fleet: {
        lastSerial: this.persisted.fetch.lastSerial ?? null,
        lastAttempt: this.persisted.fetch.lastAttempt ?? null,
        lastSuccess: this.persisted.fetch.lastSuccess ?? null,
        lastError: this.persisted.fetch.lastError ?? null,
      },
      appliedAt: this.persisted.appliedAt ?? null,
    };
  }

  /** The update cycle's hook: fetch the tenant bundle (if changed), then re-apply. */
  async sync(ctx: SyncContext): Promise<void> {
    await this.fetchBundle(ctx);
    await this.apply();
  }

  private async fetchBundle(ctx: SyncContext): Promise<void> {
    const tenant = this.deps.config.fleet.tenant;
    const at = this.deps.now().toISOString();
    const fetch = this.persisted.fetch;
    fetch.lastAttempt = at;
    const file = bundlePath(tenant);
    try {
      const res = await ctx.transport.get(file, {
        maxBytes: MAX_BUNDLE_BYTES,
        etag: readBundleBytes(this.deps.config.stateDir) ? fetch.etag : undefined,
        timeoutMs: ctx.timeoutMs,
      });
      if (res.status === 304) {
        this.persisted.serviceAnswer = this.storedBundle()?.flags ?? null;
      } else {
        const sig = await ctx.transport.get(bundleSigPath(tenant), {
          maxBytes: 64 * 1024,
          timeoutMs: ctx.timeoutMs,
        });
        if (sig.status !== 200) throw new Error(`${bundleSigPath(tenant)}: no signature body`);
        const bundle = await verifyBundle(res.body, sig.body, ctx.trust, {
          now: this.deps.now(),
          file,
          tenant,
          lastSerial: fetch.lastSerial,
        });
        writeBundle(this.deps.config.stateDir, res.body, sig.body);
        fetch.etag = res.etag;
        fetch.lastSerial = bundle.serial;
        this.persisted.serviceAnswer = bundle.flags;
        this.deps.emit("policy-fetched", {
          tenant,
          serial: bundle.serial,
          documents: bundle.documents.length,
        });
      }
      fetch.lastSuccess = at;
      delete fetch.lastError;
      this.deps.health.clear("policy-fetch", "POL_FETCH_FAILED");
      this.deps.health.clear("policy-fetch", "POL_BUNDLE_REFUSED");
    } catch (e) {
      const d = describeError(e);
      // Not published for this tenant is normal (air-gapped, local policy only): flags fall back (F4).
      this.persisted.serviceAnswer = null;
      if (d.code === "UPD_NOT_FOUND") {
        delete fetch.lastError;
        return;
      }
      fetch.lastError = { code: d.code, message: d.message, at };
      const refused = d.code.startsWith("SIG_") || d.code.startsWith("POL_");
      this.deps.health.raise(
        "policy-fetch",
        refused ? "amber" : "info",
        refused ? "POL_BUNDLE_REFUSED" : "POL_FETCH_FAILED",
        `tenant policy ${file}: ${d.code}: ${d.message}; keeping the last accepted policy and flag values`,
      );
      this.deps.emit("policy-fetch-failed", { tenant, code: d.code, reason: d.message });
      this.deps.log.warn("tenant policy not fetched", { tenant, ...d });
    }
  }

  private storedBundle(): PolicyBundle | null {
    const bytes = readBundleBytes(this.deps.config.stateDir);
    if (!bytes) return null;
    try {
      return parseBundle(bytes, "effective/bundle.json");
    } catch {
      return null;
    }
  }

  /** The policy documents in force: the fleet's, with local ones (agent policy apply) winning by name. */
  documents(): DocumentInput[] {
    const byName = new Map<string, DocumentInput>();
    for (const d of this.storedBundle()?.documents ?? []) byName.set(d.name, { ...d, source: "fleet" });
    for (const d of readLocalDocuments(this.deps.config.stateDir))
      byName.set(d.name, { name: d.name, version: 0, xml: d.xml, source: "local" });
    return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Re-runs the overlay and flag contributors and applies what they return. */
  async apply(): Promise<Resolution> {
    const now = this.deps.now().toISOString();
    const failures: Failure[] = [];
    const previous = new Map(this.persisted.overlays.map((o) => [o.file, o]));
    const candidates = new Map<string, OverlayCandidate>();
    for (const [file, o] of previous) candidates.set(file, { file, previous: o });
    const documents = this.documents();
    for (const type of this.deps.contributors(ROLE_OVERLAYS)) {
      let result: RemapResult;
      try {
        result = RemapResultSchema.parse(await this.deps.call(type, "remap", { documents }));
      } catch (e) {
        const d = describeError(e);
        failures.push({ file: type, code: d.code, message: `${type} remap failed: ${d.message}`, at: now });
        continue;
      }
      // A rule file no longer shipped takes its values with it; one that failed keeps its previous ones.
      for (const [file, c] of candidates)
        if (!result.files.some((f) => f.file === file)) candidates.set(file, { file: c.file });
      for (const f of result.files) {
        const c: OverlayCandidate = {
          file: f.file,
          ...(previous.get(f.file) ? { previous: previous.get(f.file) } : {}),
        };
        if (f.ok)
          c.next = { file: f.file, contentVersion: result.version, values: f.values } satisfies Overlay;
        else failures.push({ file: f.file, ...f.error, at: now });
        candidates.set(f.file, c);
      }
    }
    const before = this.resolution.values;
    const ungated = resolveEffective(this.base, [...candidates.values()]);
    for (const r of ungated.refusals) failures.push({ ...r, at: now });

    const supplement = await this.fetchSupplement(failures, now);
    const allowedBefore = new Map(FEATURE_GATES.map((g) => [g.flag, this.allows(g.flag)]));
    this.persisted.supplement = supplement;
    this.persisted.overlays = ungated.accepted;
    this.persisted.failures = failures;
    this.persisted.appliedAt = now;
    const flagsBefore = new Map(this.flagRows.map((r) => [r.flag, r.enabled]));
    const flags = this.computeFlags();
    this.persisted.serviceLastKnown = flags.lastKnown;
    this.save();
    this.flagRows = flags.rows;
    const resolution = this.gate(ungated);
    this.resolution = resolution;
    this.report(failures, resolution);
    this.notify(before, resolution, flagsBefore, allowedBefore);
    return resolution;
  }

  /**
   * Writes state.json when something other than timestamps changed: every offline CLI command
   * starts an agent, which applies, and an fsync per `agent content list` buys nothing.
   */
  private save(): void {
    const key = persistedKey(this.persisted);
    if (key === this.savedKey) return;
    writePersisted(this.deps.config.stateDir, this.persisted);
    this.savedKey = key;
  }

  private async fetchSupplement(failures: Failure[], now: string): Promise<Persisted["supplement"]> {
    const types = this.deps.contributors(ROLE_FLAGS);
    // No Flags content loaded now: keep the last supplement a loaded one gave (it was validated then).
    if (types.length === 0) return this.persisted.supplement;
    const type = types[0]!;
    try {
      const r = SupplementResultSchema.parse(await this.deps.call(type, "supplement", {}));
      return { type, version: r.version, flags: r.flags };
    } catch (e) {
      const d = describeError(e);
      failures.push({
        file: type,
        code: d.code,
        message: `${type} supplement unavailable: ${d.message}`,
        at: now,
      });
      return this.persisted.supplement;
    }
  }

  private computeFlags() {
    return resolveFlags({
      supplement: this.persisted.supplement?.flags ?? null,
      service: this.persisted.serviceAnswer,
      lastKnown: this.persisted.serviceLastKnown,
    });
  }

  private report(failures: Failure[], resolution: Resolution): void {
    const failed = new Set(failures.map((f) => f.file));
    for (const r of this.deps.health.list()) {
      if (r.source.startsWith("policy:") && !failed.has(r.source.slice(7)))
        this.deps.health.clearSource(r.source);
    }
    for (const f of failures) {
      // Most messages already name the rule and the document line; add them only where missing.
      const where = [
        f.rule && !f.message.includes(`rule ${f.rule}`) ? `rule ${f.rule}` : "",
        f.document && !f.message.includes(f.document) ? `${f.document}${f.line ? `:${f.line}` : ""}` : "",
      ]
        .filter(Boolean)
        .join(", ");
      const kept =
        resolution.used[f.file] === "previous" ? "previous values kept" : "none of its values applied";
      this.deps.health.raise(
        "policy:" + f.file,
        "amber",
        f.code,
        `${f.message}${where ? ` (${where})` : ""}; ${kept}`,
      );
      this.deps.emit("policy-rule-failed", {
        file: f.file,
        code: f.code,
        reason: f.message,
        ...(f.rule ? { rule: f.rule } : {}),
        ...(f.document ? { document: f.document } : {}),
        ...(f.line ? { line: f.line } : {}),
      });
    }
    this.deps.emit("policy-applied", {
      applied: Object.entries(resolution.used)
        .filter(([, u]) => u === "next")
        .map(([f]) => f),
      kept: Object.entries(resolution.used)
        .filter(([, u]) => u === "previous")
        .map(([f]) => f),
      failed: [...failed],
    });
  }

  private notify(
    before: Record<string, unknown>,
    after: Resolution,
    flagsBefore: Map<string, boolean>,
    allowedBefore: Map<string, boolean>,
  ): void {
    const keys = changedKeys(before, after.values);
    const changes: ConfigChange[] = keys.map((key) => ({
      key,
      before: before[key],
      after: after.values[key],
    }));
    for (const row of this.flagRows) {
      const was = flagsBefore.get(row.flag) ?? false;
      if (was === row.enabled) continue;
      changes.push({ key: `flags.${row.flag}`, before: was, after: row.enabled });
      this.deps.emit("flag-changed", { flag: row.flag, enabled: row.enabled });
      for (const fn of this.flagListeners.get(row.flag) ?? []) this.safely(() => fn(row.enabled));
    }
    // A supplement arriving puts gates in force without any flag's result changing: tell gated features.
    for (const [flag, was] of allowedBefore) {
      const now = this.allows(flag);
      if (was !== now && !changes.some((c) => c.key === `flags.${flag}`))
        changes.push({ key: `flags.${flag}`, before: was, after: now });
    }
    if (keys.length > 0) this.deps.emit("config-changed", { keys });
    for (const s of this.subscribers) {
      const mine = changes.filter((c) => s.patterns.some((p) => keyMatches(p, c.key)));
      if (mine.length > 0) this.safely(() => s.fn(mine, after.config));
    }
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.deps.log.warn("config subscriber failed", describeError(e));
    }
  }
}

/**
 * The effective-config service as the last apply left it on disk, without
 * starting an agent: what `agent config show`, `agent flags` and offline
 * status commands read (a running agent writes state.json after every
 * apply, so this is its view too). Nothing is fetched or applied.
 */
export function effectiveFromDisk(config: AgentConfig, log: Logger, health: HealthBoard) {
  return new EffectiveConfigService({
    config,
    call: async () => undefined,
    contributors: () => [],
    emit: () => {},
    health,
    log,
    now: () => new Date(),
  });
}

export function snapshotFromDisk(config: AgentConfig, log: Logger, health: HealthBoard) {
  return effectiveFromDisk(config, log, health).snapshot();
}

export type EffectiveSnapshot = ReturnType<EffectiveConfigService["snapshot"]>;
