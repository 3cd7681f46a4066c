/**
 * Fleet heartbeats, agent side: after every update cycle (and at once after
 * a rollback) the agent POSTs a small summary — content versions, health,
 * handler crashes, rollbacks, rejected updates — to the vendor's fleet
 * endpoint, which gates staged rollouts on it (docs/rollout.md).
 *
 * Self-contained: it reads `status()` and listens on the event bus, so it is
 * wired with one call after the agent starts:
 *
 *   const heartbeat = await startHeartbeat(agent, config);   // undefined when fleet.url is unset
 *   …
 *   await heartbeat?.stop();
 *
 * A heartbeat never affects updates: failures are counted and logged, not
 * retried in a loop, and the next cycle sends a fresh one.
 */

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import type { AgentConfig } from "../config.ts";
import { statePaths } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { EXCLUSIONS_PATH, type ExclusionReport, ExclusionReportSchema } from "../exclusions/report.ts";
import type { Exclusion } from "../exclusions-config.ts";
import { atomicWriteFile } from "../fsutil.ts";
import { log as rootLog } from "../log.ts";
import type { AgentStatus } from "./api.ts";
import type { AgentEvent } from "./events.ts";
import { type Heartbeat, type HeartbeatContent, HeartbeatSchema } from "./heartbeat-protocol.ts";
import { type HeartbeatSigner, loadSigner } from "./identity.ts";

export interface HeartbeatSource {
  status(): AgentStatus;
  /** The full exclusion list, sent when the fleet asks for it (core/exclusions/report.ts). */
  exclusions?: { list(): Exclusion[] };
  events: { subscribe(fn: (e: AgentEvent) => void): () => void };
}

export interface HeartbeatOptions {
  url: string;
  tenant: string;
  /** Tenant token (bearer); not needed once the agent is enrolled and signs its heartbeats. */
  token?: string;
  agentId: string;
  /** The enrolled agent key (core/agent/identity.ts): heartbeats are signed and numbered. */
  signer?: HeartbeatSigner;
  timeoutMs?: number;
  fetchImpl?: typeof fetch;
  now?: () => Date;
  /** Event types the handler host emits when a handler process crashes. */
  crashEvents?: readonly string[];
  /** Extra heartbeats after rollbacks are at least this far apart (the cycle's own always goes). */
  urgentSpacingMs?: number;
}

/**
 * What the handler host emits (core/host/manager.ts): `host-crashed` names the
 * host group, `crash-loop` and `handler-failed` the content type.
 */
export const DEFAULT_CRASH_EVENTS = [
  "host-crashed",
  "crash-loop",
  "handler-failed",
  "handler-crashed",
] as const;
const MAX_ROLLBACKS_KEPT = 8;
const MAX_REJECTIONS_KEPT = 8;

export interface HeartbeatCounters {
  /** Handler crashes per content type since its current version went live. */
  crashes: ReadonlyMap<string, number>;
  rollbacks: ReadonlyMap<string, HeartbeatContent["rollbacks"]>;
  rejected: number;
  lastRejections: Heartbeat["lastRejections"];
}

/** The heartbeat for a status and the counters gathered from events. Pure. */
export function buildHeartbeat(
  status: AgentStatus,
  counters: HeartbeatCounters,
  ids: { agentId: string; tenant: string; sentAt: Date },
): Heartbeat {
  return {
    schema: 1,
    agentId: ids.agentId,
    tenant: ids.tenant,
    group: status.policy?.group ?? status.update.group,
    agentVersion: status.agent.version.slice(0, 64),
    sentAt: ids.sentAt.toISOString(),
    health: status.health,
    content: status.content.slice(0, 64).map((c) => ({
      type: c.type,
      version: c.version,
      handlerState: c.handlerState,
      badVersions: c.badVersions.slice(-32),
      crashes: counters.crashes.get(c.type) ?? 0,
      rollbacks: [...(counters.rollbacks.get(c.type) ?? [])],
    })),
    rejected: counters.rejected,
    lastRejections: counters.lastRejections.slice(-MAX_REJECTIONS_KEPT),
    ...(status.exclusions
      ? {
          exclusions: {
            count: status.exclusions.count,
            hash: status.exclusions.hash,
            bySource: status.exclusions.bySource,
          },
        }
      : {}),
    ...(status.policy
      ? { policy: { cadence: status.policy.cadence, pinned: Object.keys(status.policy.pins).slice(0, 64) } }
      : {}),
  };
}

export class HeartbeatReporter {
  private readonly crashes = new Map<string, number>();
  private readonly rollbacks = new Map<string, HeartbeatContent["rollbacks"]>();
  private rejected = 0;
  private lastRejections: Heartbeat["lastRejections"] = [];
  private unsubscribe?: () => void;
  private readonly inflight = new Set<Promise<unknown>>();
  private lastUrgentAt = Number.NEGATIVE_INFINITY;
  private notBefore = 0;
  private readonly log = rootLog.child({ component: "heartbeat" });
  private readonly now: () => Date;
  private readonly crashEvents: ReadonlySet<string>;
  sent = 0;
  failed = 0;
  readonly exclusionReports: ExclusionsSent = { sent: 0, failed: 0 };

  constructor(
    private readonly source: HeartbeatSource,
    private readonly opts: HeartbeatOptions,
  ) {
    this.now = opts.now ?? (() => new Date());
    this.crashEvents = new Set(opts.crashEvents ?? DEFAULT_CRASH_EVENTS);
  }

  start(): this {
    this.unsubscribe ??= this.source.events.subscribe((e) => this.observe(e));
    return this;
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.flush();
  }

  async flush(): Promise<void> {
    await Promise.all([...this.inflight]);
  }

  /** Folds one agent event into the counters; sends after cycles and rollbacks. */
  observe(e: AgentEvent): void {
    if (e.type === "content-installed" && typeof e.contentType === "string") {
      this.crashes.delete(e.contentType);
    } else if (this.crashEvents.has(e.type)) {
      for (const t of this.crashedTypes(e)) this.crashes.set(t, (this.crashes.get(t) ?? 0) + 1);
    } else if (e.type === "content-rolled-back" && typeof e.contentType === "string") {
      const list = this.rollbacks.get(e.contentType) ?? [];
      list.push({
        from: typeof e.from === "number" ? e.from : null,
        to: typeof e.to === "number" ? e.to : 0,
        at: this.now().toISOString(),
        automatic: e.automatic === true,
      });
      if (list.length > MAX_ROLLBACKS_KEPT) list.splice(0, list.length - MAX_ROLLBACKS_KEPT);
      this.rollbacks.set(e.contentType, list);
      this.crashes.delete(e.contentType);
      this.sendUrgent();
    } else if (e.type === "update-rejected") {
      this.rejected++;
      const code = typeof e.code === "string" ? e.code.slice(0, 64) : "UNKNOWN";
      const type = typeof e.contentType === "string" ? e.contentType : "";
      this.lastRejections.push(/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(type) ? { type, code } : { code });
      if (this.lastRejections.length > MAX_REJECTIONS_KEPT) this.lastRejections.shift();
    } else if (e.type === "update-finished") {
      this.track(this.send());
    }
  }

  /** The content types a crash event concerns: named directly, or every type served by the crashed host group. */
  private crashedTypes(e: AgentEvent): string[] {
    if (typeof e.contentType === "string") return [e.contentType];
    if (typeof e.group !== "string") return [];
    try {
      return this.source
        .status()
        .content.filter((c) => c.host?.group === e.group && c.version !== null)
        .map((c) => c.type);
    } catch {
      return [];
    }
  }

  private sendUrgent(): void {
    const now = this.now().getTime();
    if (now - this.lastUrgentAt < (this.opts.urgentSpacingMs ?? 60_000)) return;
    this.lastUrgentAt = now;
    this.track(this.send());
  }

  private track(p: Promise<unknown>): void {
    this.inflight.add(p);
    p.finally(() => this.inflight.delete(p));
  }

  build(): Heartbeat {
    return buildHeartbeat(
      this.source.status(),
      {
        crashes: this.crashes,
        rollbacks: this.rollbacks,
        rejected: this.rejected,
        lastRejections: this.lastRejections,
      },
      { agentId: this.opts.agentId, tenant: this.opts.tenant, sentAt: this.now() },
    );
  }

  /** The full exclusion list, once, because the fleet asked (its hash differs from the fleet's copy). */
  private async sendExclusions(heartbeatBody: string): Promise<void> {
    const hb = JSON.parse(heartbeatBody) as {
      exclusions?: { count: number; hash: string; bySource?: Record<string, number> };
    };
    const list = this.source.exclusions?.list();
    if (!hb.exclusions || !list) return;
    const report: ExclusionReport = {
      schema: 1,
      agentId: this.opts.agentId,
      tenant: this.opts.tenant,
      sentAt: this.now().toISOString(),
      summary: hb.exclusions,
      exclusions: list,
    };
    try {
      const res = await (this.opts.fetchImpl ?? fetch)(new URL(EXCLUSIONS_PATH, this.opts.url).href, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          // Enrolled agents send no token: the fleet takes the list its signed heartbeat announced.
          ...(this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {}),
          "idempotency-key": `${this.opts.agentId}:${hb.exclusions.hash}`,
        },
        body: JSON.stringify(ExclusionReportSchema.parse(report)),
        redirect: "error",
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
      });
      await res.body?.cancel().catch(() => {});
      if (res.ok) this.exclusionReports.sent++;
      else {
        this.exclusionReports.failed++;
        this.log.warn("exclusion report refused", { status: res.status });
      }
    } catch (e) {
      this.exclusionReports.failed++;
      this.log.warn("exclusion report failed", { error: (e as Error).message });
    }
  }

  /** Posts one heartbeat now. Resolves true on a 2xx; never throws. */
  async send(): Promise<boolean> {
    if (this.now().getTime() < this.notBefore) return false;
    let body: string;
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    try {
      const hb = this.build();
      if (this.opts.signer) hb.seq = this.opts.signer.nextSeq(this.now());
      body = JSON.stringify(HeartbeatSchema.parse(hb));
      if (this.opts.signer)
        Object.assign(headers, await this.opts.signer.headers(new TextEncoder().encode(body)));
    } catch (e) {
      this.failed++;
      this.log.warn("heartbeat not built", { error: (e as Error).message });
      return false;
    }
    try {
      const res = await (this.opts.fetchImpl ?? fetch)(this.opts.url, {
        method: "POST",
        headers,
        body,
        redirect: "error",
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
      });
      // 200 with a body: the fleet asks for something beyond the heartbeat (the exclusion list).
      let want: unknown;
      if (res.status === 200 && (res.headers.get("content-type") ?? "").startsWith("application/json")) {
        want = ((await res.json().catch(() => ({}))) as { want?: unknown }).want;
      } else await res.body?.cancel().catch(() => {});
      if (res.ok) {
        this.sent++;
        if (Array.isArray(want) && want.includes("exclusions")) await this.sendExclusions(body);
        return true;
      }
      const retryAfter = Number(res.headers.get("retry-after"));
      if (res.status === 429 && Number.isFinite(retryAfter))
        this.notBefore = this.now().getTime() + retryAfter * 1000;
      this.failed++;
      this.log.warn("heartbeat refused", { status: res.status, url: this.opts.url });
      return false;
    } catch (e) {
      this.failed++;
      this.log.warn("heartbeat failed", { url: this.opts.url, error: (e as Error).message });
      return false;
    }
  }
}

export interface ExclusionsSent {
  sent: number;
  failed: number;
}

/** STATE/agent-id: a random id made on first use, so the vendor can count agents without host identity. */
export function loadAgentId(stateDir: string): string {
  const file = statePaths(stateDir).agentId;
  if (existsSync(file)) {
    const id = readFileSync(file, "utf8").trim();
    if (/^[A-Za-z0-9-]{8,64}$/.test(id)) return id;
  }
  const id = crypto.randomUUID();
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  atomicWriteFile(file, `${id}\n`, 0o600);
  return id;
}

/**
 * The one call `agent run` needs: reads the token and agent id, refuses to
 * send the tenant token in clear text anywhere but loopback, and starts
 * reporting. Undefined when `fleet.url` is not configured.
 */
export async function startHeartbeat(
  agent: HeartbeatSource,
  config: AgentConfig,
  extra: Partial<Pick<HeartbeatOptions, "fetchImpl" | "now" | "crashEvents">> = {},
): Promise<HeartbeatReporter | undefined> {
  const f = config.fleet;
  if (!f.url) return undefined;
  // Enrolled (`agent enroll`): the agent key signs; the tenant token stays out of heartbeats.
  const signer = await loadSigner(config.stateDir);
  if (signer) {
    return new HeartbeatReporter(agent, {
      url: f.url,
      tenant: signer.tenant,
      agentId: signer.agentId,
      signer,
      timeoutMs: f.timeoutSeconds * 1000,
      ...extra,
    }).start();
  }
  const url = new URL(f.url);
  const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    throw new ConfigError(
      "CFG_FLEET_INSECURE",
      `fleet.url ${f.url}: the tenant token is only sent over https (or http to loopback)`,
    );
  }
  let token = f.token;
  if (f.tokenFile) {
    try {
      token = readFileSync(f.tokenFile, "utf8").trim();
    } catch (e) {
      throw new ConfigError(
        "CFG_FLEET_TOKEN",
        `${f.tokenFile}: cannot read the fleet token (${(e as Error).message})`,
        {
          file: f.tokenFile,
          cause: e,
        },
      );
    }
  }
  if (!token)
    throw new ConfigError(
      "CFG_FLEET_TOKEN",
      "fleet.url is set but neither fleet.tokenFile nor fleet.token is",
    );
  return new HeartbeatReporter(agent, {
    url: f.url,
    tenant: f.tenant,
    token,
    agentId: loadAgentId(config.stateDir),
    timeoutMs: f.timeoutSeconds * 1000,
    ...extra,
  }).start();
}
