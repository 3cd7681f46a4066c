/**
 * The tenant policy bundle: what the fleet service hands an agent besides
 * content — the tenant's policy documents (XML, as the management console
 * writes them) and the Flags Service's words. Signed like a group index
 * (detached CMS, same keys, same trust store), versioned by a serial the
 * agent never lets go backwards.
 *
 *   REPO/tenants/<tenant>/policy.json       the bundle (this schema)
 *   REPO/tenants/<tenant>/policy.json.p7s   detached CMS signature over it
 *
 * Checks, each with its rule id (docs/policy.md):
 *   B1 the signature verifies and chains to the agent's trust store
 *   B2 the bytes are a bundle (schema below, size cap)
 *   B3 the bundle is for this agent's tenant
 *   B4 the serial is not lower than the last one accepted (no replay of an old policy)
 *   B5 document names are unique
 */

import { type Trust, verifySignature } from "../crypto/verify.ts";
import { ConfigError } from "../errors.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";
import { FLAG_NAME_RE } from "./flags.ts";

export const TENANT_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;
export const DOCUMENT_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\.xml$/;
export const MAX_BUNDLE_BYTES = 32 * 1024 * 1024;

/** A tenant name as the fleet uses it (also a path segment, so it is checked before use). */
export function checkTenant(tenant: string): string {
  if (!TENANT_RE.test(tenant)) {
    throw new ConfigError(
      "POL_BAD_TENANT",
      `tenant ${JSON.stringify(tenant)}: lowercase letters, digits and dashes, at most 64`,
    );
  }
  return tenant;
}

export const bundlePath = (tenant: string) => `tenants/${tenant}/policy.json`;
export const bundleSigPath = (tenant: string) => `${bundlePath(tenant)}.p7s`;

export const PolicyDocumentSchema = lazySchema(() =>
  z.strictObject({
    name: z.string().check(z.regex(DOCUMENT_NAME_RE, "a file name ending in .xml")),
    version: z.int().check(z.positive()),
    xml: z.string().check(z.maxLength(16 * 1024 * 1024)),
  }),
);

export const PolicyBundleSchema = lazySchema(() =>
  z.strictObject({
    schema: z.literal(1),
    tenant: z.string().check(z.regex(TENANT_RE)),
    serial: z.int().check(z.positive()),
    issued: z.iso.datetime(),
    documents: z.array(PolicyDocumentSchema).check(z.maxLength(256)),
    flags: z.record(z.string().check(z.regex(FLAG_NAME_RE)), z.enum(["on", "off"])),
  }),
);

export type PolicyDocument = z.infer<typeof PolicyDocumentSchema>;
export type PolicyBundle = z.infer<typeof PolicyBundleSchema>;

export function serializeBundle(b: PolicyBundle): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(b, null, 2)}\n`);
}

/** B2, B5: parses bundle bytes (no signature check; see verifyBundle). */
export function parseBundle(bytes: Uint8Array, file: string): PolicyBundle {
  if (bytes.byteLength > MAX_BUNDLE_BYTES) {
    throw new ConfigError(
      "POL_BUNDLE_INVALID",
      `${file}: ${bytes.byteLength} bytes exceeds ${MAX_BUNDLE_BYTES} (B2)`,
      { file },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new ConfigError("POL_BUNDLE_INVALID", `${file}: not JSON: ${(e as Error).message} (B2)`, { file });
  }
  const r = PolicyBundleSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ConfigError(
      "POL_BUNDLE_INVALID",
      `${file}: ${i?.path.join(".") || "(root)"}: ${i?.message} (B2)`,
      { file },
    );
  }
  const names = new Set<string>();
  for (const d of r.data.documents) {
    if (names.has(d.name))
      throw new ConfigError("POL_BUNDLE_INVALID", `${file}: document ${d.name} appears twice (B5)`, { file });
    names.add(d.name);
  }
  return r.data;
}

/** B1–B5: the bundle an agent may act on, or a ConfigError/SignatureError saying why not. */
export async function verifyBundle(
  bytes: Uint8Array,
  signature: Uint8Array,
  trust: Trust,
  opts: { now: Date; file: string; tenant: string; lastSerial?: number },
): Promise<PolicyBundle> {
  // In the running agent the check runs in the crypto worker (core/crypto/remote-trust.ts); an
  // in-process trust store loads the CMS stack with the first bundle to verify, not before.
  await verifySignature(bytes, signature, trust, { now: opts.now, file: opts.file });
  const bundle = parseBundle(bytes, opts.file);
  if (bundle.tenant !== opts.tenant) {
    throw new ConfigError(
      "POL_BUNDLE_WRONG_TENANT",
      `${opts.file}: bundle is for tenant ${bundle.tenant}, this agent is ${opts.tenant} (B3)`,
      { file: opts.file },
    );
  }
  if (opts.lastSerial !== undefined && bundle.serial < opts.lastSerial) {
    throw new ConfigError(
      "POL_BUNDLE_ROLLBACK",
      `${opts.file}: serial ${bundle.serial} is lower than ${opts.lastSerial} already applied (B4)`,
      { file: opts.file },
    );
  }
  return bundle;
}
