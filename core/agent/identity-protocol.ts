/**
 * Agent identity on the wire (docs/rollout.md, "Agent identity"): how an
 * agent enrolls its public key with the fleet service, and how a heartbeat
 * carries the agent key's signature. Shared by the agent (core/agent/identity.ts)
 * and the fleet service (fleet/identity/), validated at both edges with zod.
 *
 * A heartbeat is signed over its exact body bytes with Ed25519; the body
 * holds `seq` (strictly increasing per agent) and `sentAt`, so a captured
 * heartbeat cannot be sent again (replay) and an old one cannot be delayed
 * into a later decision.
 */

import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";
import { TENANT_RE } from "./heartbeat-protocol.ts";

export const ENROLL_PATH = "/fleet/enroll";
/** Header carrying `ed25519=<base64url signature over the body>`. */
export const SIGNATURE_HEADER = "outpost-signature";
/** Header naming the signer: `<tenant>/<agentId>`. */
export const AGENT_HEADER = "outpost-agent";
export const AGENT_ID_RE = /^[A-Za-z0-9-]{8,64}$/;
export const SIGNATURE_ALG = "Ed25519" as const;
/** An Ed25519 SubjectPublicKeyInfo is 44 bytes (base64url: 59 characters). */
const SPKI_B64URL = /^[A-Za-z0-9_-]{40,120}$/;

export const EnrollRequestSchema = lazySchema(() =>
  z.strictObject({
    schema: z.literal(1),
    agentId: z.string().check(z.regex(AGENT_ID_RE)),
    tenant: z.string().check(z.regex(TENANT_RE)),
    alg: z.literal(SIGNATURE_ALG),
    /** SubjectPublicKeyInfo (DER), base64url. */
    publicKey: z.string().check(z.regex(SPKI_B64URL)),
  }),
);

export const EnrollResponseSchema = lazySchema(() =>
  z.strictObject({
    agentId: z.string().check(z.regex(AGENT_ID_RE)),
    tenant: z.string().check(z.regex(TENANT_RE)),
    /** The release group the fleet assigned (from the tenant's enrollment settings, not the agent). */
    group: z.string(),
    enrolledAt: z.iso.datetime(),
  }),
);

export type EnrollRequest = z.infer<typeof EnrollRequestSchema>;
export type EnrollResponse = z.infer<typeof EnrollResponseSchema>;

export function parseSignatureHeader(v: string | undefined | null): Uint8Array | null {
  const m = /^ed25519=([A-Za-z0-9_-]{80,100})$/.exec(v ?? "");
  if (!m?.[1]) return null;
  const bytes = new Uint8Array(Buffer.from(m[1], "base64url"));
  return bytes.length === 64 ? bytes : null;
}

export function formatSignatureHeader(sig: Uint8Array): string {
  return `ed25519=${Buffer.from(sig).toString("base64url")}`;
}
