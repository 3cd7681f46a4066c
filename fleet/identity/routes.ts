/**
 * The identity edge of `contentctl serve --release`: POST /fleet/enroll, and
 * the signed-heartbeat check the heartbeat route calls (rules in verify.ts).
 *
 *   POST /fleet/enroll   tenant token (bearer) + { agentId, tenant, alg, publicKey } → { agentId, tenant, group, enrolledAt }
 */
import type { Context, Hono } from "hono";
import type { Heartbeat } from "../../core/agent/heartbeat-protocol.ts";
import { TENANT_RE } from "../../core/agent/heartbeat-protocol.ts";
import {
  AGENT_HEADER,
  AGENT_ID_RE,
  ENROLL_PATH,
  EnrollRequestSchema,
  parseSignatureHeader,
  SIGNATURE_HEADER,
} from "../../core/agent/identity-protocol.ts";
import { sha256Hex } from "../../core/crypto/digest.ts";
import { log } from "../../core/log.ts";
import type { ReleaseConfig } from "../config.ts";
import { readJsonBody } from "../http/body.ts";
import type { IdentityStore } from "./store.ts";
import { type Check, checkEnrollment, checkSignedHeartbeat, isEd25519Key } from "./verify.ts";

const logger = log.child({ component: "fleet-identity" });
const MAX_ENROLL_BYTES = 4096;

export interface IdentityEdgeDeps {
  config: ReleaseConfig;
  store: IdentityStore;
  now: () => Date;
}

/** What the gate learns about a heartbeat's sender besides the heartbeat itself. */
export interface SenderFacts {
  enrolled: boolean;
  vendor: boolean;
}

export class IdentityEdge {
  private readonly tenantsByHash: Map<string, string>;
  private readonly keys = new Map<string, CryptoKey>();
  private enrolling: Promise<unknown> = Promise.resolve();
  /** Refusals by rule since start (console, tests, metrics). */
  readonly refused: Record<string, number> = {};

  constructor(private readonly deps: IdentityEdgeDeps) {
    this.tenantsByHash = new Map(
      Object.entries(deps.config.fleet.tenants).map(([t, v]) => [v.tokenSha256, t]),
    );
  }

  /** The tenant whose token this Authorization header carries (E1 / the compatibility mode). */
  tenantOf(authorization: string | undefined): string | undefined {
    const token = /^Bearer ([\x21-\x7e]{16,256})$/.exec(authorization ?? "")?.[1];
    // Looking the token up by its hash leaks nothing a timing probe could use.
    return token ? this.tenantsByHash.get(sha256Hex(new TextEncoder().encode(token))) : undefined;
  }

  /** Whether the request claims to be signed (I1 decides between the signed and the compatibility path). */
  isSigned(headers: Headers): boolean {
    return headers.has(SIGNATURE_HEADER);
  }

  /** I1–I6 for a signed heartbeat whose body parsed. */
  async verifyHeartbeat(
    headers: Headers,
    body: Uint8Array<ArrayBuffer>,
    hb: Heartbeat,
  ): Promise<Check<{ hb: Heartbeat; sender: SenderFacts }>> {
    const signer = /^([a-z0-9][a-z0-9-]{0,63})\/([A-Za-z0-9-]{8,64})$/.exec(headers.get(AGENT_HEADER) ?? "");
    const sig = parseSignatureHeader(headers.get(SIGNATURE_HEADER));
    const tenant = signer?.[1];
    const agentId = signer?.[2];
    if (!tenant || !agentId || !sig)
      return this.count({
        ok: false,
        rule: "I1",
        status: 401,
        code: "FLEET_NOT_ENROLLED",
        error: "I1: malformed signature or agent header",
      });
    const enrollment = await this.deps.store.enrollment(tenant, agentId);
    if (!enrollment)
      return this.count({
        ok: false,
        rule: "I1",
        status: 401,
        code: "FLEET_NOT_ENROLLED",
        error: `I1: ${tenant}/${agentId} is not enrolled`,
      });
    if (!(await this.verify(enrollment.publicKey, sig, body))) {
      return this.count({
        ok: false,
        rule: "I2",
        status: 401,
        code: "FLEET_BAD_SIGNATURE",
        error: `I2: signature of ${tenant}/${agentId} does not verify`,
      });
    }
    const checked = checkSignedHeartbeat(hb, { tenant, agentId }, enrollment, {
      lastSeq: 0,
      now: this.deps.now().getTime(),
      maxSkewMs: this.deps.config.fleet.identity.maxSkewSeconds * 1000,
    });
    if (!checked.ok) return this.count(checked);
    // I4 against the store last, so a heartbeat refused for another reason does not use up its number.
    if (!(await this.deps.store.advanceSequence(tenant, agentId, hb.seq ?? 0))) {
      return this.count({
        ok: false,
        rule: "I4",
        status: 409,
        code: "FLEET_REPLAY",
        error: `I4: sequence ${hb.seq} of ${tenant}/${agentId} was already used`,
      });
    }
    return { ok: true, value: { hb: checked.value, sender: { enrolled: true, vendor: enrollment.vendor } } };
  }

  private async verify(publicKey: string, sig: Uint8Array, body: Uint8Array<ArrayBuffer>): Promise<boolean> {
    try {
      let key = this.keys.get(publicKey);
      if (!key) {
        key = await crypto.subtle.importKey(
          "spki",
          Buffer.from(publicKey, "base64url"),
          { name: "Ed25519" },
          false,
          ["verify"],
        );
        this.keys.set(publicKey, key);
      }
      return await crypto.subtle.verify({ name: "Ed25519" }, key, new Uint8Array(sig), body);
    } catch {
      return false;
    }
  }

  private count<T>(r: Check<T>): Check<T> {
    if (!r.ok) this.refused[r.rule] = (this.refused[r.rule] ?? 0) + 1;
    return r;
  }

  routes(app: Hono): void {
    app.post(ENROLL_PATH, (c) => {
      // One enrollment at a time, so two racing requests cannot both pass the count (E2, E3).
      const run = this.enrolling.then(() => this.enroll(c));
      this.enrolling = run.catch(() => {});
      return run;
    });
  }

  private async enroll(c: Context): Promise<Response> {
    const tenant = this.tenantOf(c.req.header("authorization"));
    if (!tenant) {
      return c.json({ error: "E1: no or unknown tenant token", code: "FLEET_UNAUTHORIZED" }, 401, {
        "WWW-Authenticate": 'Bearer realm="outpost-fleet"',
      });
    }
    const read = await readJsonBody(c, EnrollRequestSchema, MAX_ENROLL_BYTES, "enrollment");
    if (!read.ok) return read.response;
    const req = read.data;
    if (req.tenant !== tenant) {
      return c.json({ error: "E1: token does not belong to this tenant", code: "FLEET_WRONG_TENANT" }, 403);
    }
    if (
      !TENANT_RE.test(req.tenant) ||
      !AGENT_ID_RE.test(req.agentId) ||
      !(await isEd25519Key(req.publicKey))
    ) {
      return c.json(
        { error: "publicKey is not an Ed25519 SubjectPublicKeyInfo", code: "FLEET_INVALID" },
        400,
      );
    }
    const tenantConfig = this.deps.config.fleet.tenants[tenant];
    if (!tenantConfig) return c.json({ error: "unknown tenant", code: "FLEET_UNAUTHORIZED" }, 401);
    const now = this.deps.now();
    const counts = await this.deps.store.enrollmentCounts(tenant, now.getTime() - 3600_000);
    const existing = await this.deps.store.enrollment(tenant, req.agentId);
    const check = checkEnrollment(req, tenantConfig, {
      existing,
      total: counts.total,
      recentHour: counts.recent,
    });
    if (!check.ok) {
      this.count(check);
      logger.warn("enrollment refused", { tenant, agentId: req.agentId, rule: check.rule, code: check.code });
      return c.json(
        { error: check.error, code: check.code },
        check.status,
        check.status === 429 ? { "Retry-After": "3600" } : {},
      );
    }
    const record = existing ?? {
      tenant,
      agentId: req.agentId,
      group: assignedGroup(this.deps.config, tenant),
      alg: "Ed25519" as const,
      publicKey: req.publicKey,
      vendor: tenantConfig.vendor,
      enrolledAt: now.toISOString(),
    };
    if (!existing) {
      await this.deps.store.addEnrollment(record);
      logger.info("agent enrolled", { tenant, agentId: req.agentId, group: record.group });
    }
    return c.json(
      { agentId: record.agentId, tenant: record.tenant, group: record.group, enrolledAt: record.enrolledAt },
      existing ? 200 : 201,
    );
  }
}

/** The group a tenant's new agents are enrolled into: the tenant's `group`, else the last (broadest) group. */
export function assignedGroup(config: Pick<ReleaseConfig, "fleet" | "groups">, tenant: string): string {
  return config.fleet.tenants[tenant]?.group ?? config.groups.at(-1)?.name ?? "default";
}
