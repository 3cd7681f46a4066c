/**
 * Identity checks of the fleet endpoint, as pure functions: facts in (the
 * heartbeat, the enrollment record, the clock), a verdict with its rule id
 * out. The signature itself is checked by `verifySignature` (WebCrypto);
 * everything else here is I/O-free and tested one attack at a time
 * (fleet/identity/verify.test.ts, fleet/identity/forgery.test.ts).
 *
 *   I1  a heartbeat must be signed by an enrolled agent key (unless the
 *       unenrolled compatibility mode is on, then the tenant token decides)
 *   I2  the signature must verify over the exact body bytes
 *   I3  the body must name the agent that signed it (tenant and agent id)
 *   I4  seq must be present and greater than the last accepted (replay)
 *   I5  sentAt must be within maxSkew of the server clock (delayed replay)
 *   I6  the group counted is the enrollment's, whatever the heartbeat claims
 *   E1  enrolling needs the tenant's token, for that tenant
 *   E2  at most `enroll.maxAgents` agents per tenant
 *   E3  at most `enroll.perHour` new agents per tenant per hour
 *   E4  an agent id enrolled with one key cannot be taken over with another
 */
import type { Heartbeat } from "../../core/agent/heartbeat-protocol.ts";
import { SIGNATURE_ALG } from "../../core/agent/identity-protocol.ts";
import type { TenantConfig } from "./config.ts";
import type { Enrollment } from "./store.ts";

export type Refusal = {
  ok: false;
  rule: string;
  status: 400 | 401 | 403 | 409 | 429;
  code: string;
  error: string;
};
export type Check<T = undefined> = { ok: true; value: T } | Refusal;

const refuse = (rule: string, status: Refusal["status"], code: string, error: string): Refusal => ({
  ok: false,
  rule,
  status,
  code,
  error: `${rule}: ${error}`,
});

/** I3–I6 over a heartbeat whose signature (I2) by `enrollment`'s key has verified. */
export function checkSignedHeartbeat(
  hb: Heartbeat,
  signer: { tenant: string; agentId: string },
  enrollment: Enrollment,
  o: { lastSeq: number; now: number; maxSkewMs: number },
): Check<Heartbeat> {
  if (hb.tenant !== signer.tenant || hb.agentId !== signer.agentId) {
    return refuse(
      "I3",
      403,
      "FLEET_WRONG_AGENT",
      `signed by ${signer.tenant}/${signer.agentId} but names ${hb.tenant}/${hb.agentId}`,
    );
  }
  if (hb.seq === undefined || hb.seq <= o.lastSeq) {
    return refuse("I4", 409, "FLEET_REPLAY", `sequence ${hb.seq ?? "missing"} is not after ${o.lastSeq}`);
  }
  const skew = Math.abs(Date.parse(hb.sentAt) - o.now);
  if (!(skew <= o.maxSkewMs)) {
    return refuse(
      "I5",
      400,
      "FLEET_STALE",
      `sentAt ${hb.sentAt} is ${Math.round(skew / 1000)} s from the server clock`,
    );
  }
  // I6: the group is the fleet's assignment; a claim of another group changes nothing.
  return { ok: true, value: { ...hb, group: enrollment.group } };
}

/** E2–E4 for an enrollment request with a valid tenant token (E1 is checked before). */
export function checkEnrollment(
  req: { tenant: string; agentId: string; publicKey: string },
  tenant: TenantConfig,
  o: { existing: Enrollment | undefined; total: number; recentHour: number },
): Check<"new" | "again"> {
  if (o.existing) {
    if (o.existing.publicKey === req.publicKey) return { ok: true, value: "again" };
    return refuse("E4", 409, "FLEET_ENROLLED", `${req.tenant}/${req.agentId} is enrolled with another key`);
  }
  if (o.total >= tenant.enroll.maxAgents) {
    return refuse(
      "E2",
      429,
      "FLEET_ENROLL_LIMIT",
      `tenant ${req.tenant} has enrolled its ${tenant.enroll.maxAgents} agents`,
    );
  }
  if (o.recentHour >= tenant.enroll.perHour) {
    return refuse(
      "E3",
      429,
      "FLEET_ENROLL_RATE",
      `tenant ${req.tenant} enrolled ${o.recentHour} agents in the last hour (limit ${tenant.enroll.perHour})`,
    );
  }
  return { ok: true, value: "new" };
}

/** I2: Ed25519 over the body; a malformed stored key or signature is simply "does not verify". */
export async function verifySignature(
  publicKey: string,
  signature: Uint8Array<ArrayBuffer>,
  body: Uint8Array<ArrayBuffer>,
): Promise<boolean> {
  try {
    const key = await crypto.subtle.importKey(
      "spki",
      Buffer.from(publicKey, "base64url"),
      { name: SIGNATURE_ALG },
      false,
      ["verify"],
    );
    return await crypto.subtle.verify({ name: SIGNATURE_ALG }, key, signature, body);
  } catch {
    return false;
  }
}

/** Valid SubjectPublicKeyInfo for Ed25519? (checked at enrollment, so a bad key never gets stored) */
export async function isEd25519Key(publicKey: string): Promise<boolean> {
  try {
    await crypto.subtle.importKey(
      "spki",
      Buffer.from(publicKey, "base64url"),
      { name: SIGNATURE_ALG },
      false,
      ["verify"],
    );
    return true;
  } catch {
    return false;
  }
}
