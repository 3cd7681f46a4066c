/**
 * USERAPPFEED's tenant signature (docs/exclusions.md, "USERAPPFEED and the
 * tenant key"). The administrator's rules reach the agent like all content
 * — in a package the vendor's chain signs — but they are *authored* by the
 * tenant: `contentctl rules pack --type USERAPPFEED --tenant-keys DIR`
 * adds `tenant.json` (the SHA-384 of every other payload file) and its
 * detached CMS signature `tenant.json.p7s`, made with the tenant's own key
 * chain (`contentctl keys init`). The agent trusts that chain's root for
 * USERAPPFEED only: `agent appfeed trust-tenant ROOT.pem` puts it in the
 * appfeed group's work directory, where no other handler looks, and the
 * vendor root is never consulted for it — so vendor-signed USERAPPFEED
 * rules are refused, and the tenant key signs nothing else.
 *
 *   T1  tenant.json and tenant.json.p7s are present (validate, pure)
 *   T2  tenant.json names this type and version and lists exactly the other payload files,
 *       with their SHA-384 (validate, pure)
 *   T3  a tenant root is installed for USERAPPFEED (load)
 *   T4  the signature verifies to that root (load; a vendor signature does not)
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { TrustStore } from "../../../core/crypto/cms.ts";
import { signDetached } from "../../../core/crypto/cms-sign.ts";
import { verifyDetached } from "../../../core/crypto/cms-verify.ts";
import { sha384Hex } from "../../../core/crypto/digest.ts";
import type { SigningKeys } from "../../../core/crypto/keys.ts";
import { describeError, HandlerError } from "../../../core/errors.ts";
import type { Capabilities, ContentView } from "../../../core/handler/contract.ts";

export const TENANT_MANIFEST = "tenant.json";
export const TENANT_SIGNATURE = "tenant.json.p7s";
/** The tenant trust root in the appfeed group's work directory. */
export const TENANT_ROOT_FILE = "tenant-root.pem";

const TenantManifestSchema = z
  .object({
    schema: z.literal(1),
    contentType: z.string(),
    version: z.number().int().positive(),
    files: z.record(z.string(), z.string().regex(/^[0-9a-f]{96}$/)),
  })
  .strict();

const fail = (code: string, file: string, why: string) => new HandlerError(code, `${file}: ${why}`, { file });

/** Vendor side: tenant.json over the payload files, and its signature by the tenant's keys. */
export async function tenantSign(
  files: Map<string, Uint8Array>,
  o: { type: string; version: number; keys: SigningKeys },
): Promise<Map<string, Uint8Array>> {
  const digests = Object.fromEntries(
    [...files].sort(([a], [b]) => (a < b ? -1 : 1)).map(([path, data]) => [path, sha384Hex(data)]),
  );
  const manifest = new TextEncoder().encode(
    `${JSON.stringify({ schema: 1, contentType: o.type, version: o.version, files: digests })}\n`,
  );
  return new Map([
    [TENANT_MANIFEST, manifest],
    [TENANT_SIGNATURE, await signDetached(manifest, o.keys)],
  ]);
}

/** T1, T2: the tenant manifest covers exactly this payload. Pure. */
export function validateTenantManifest(view: ContentView): void {
  for (const f of [TENANT_MANIFEST, TENANT_SIGNATURE]) {
    if (!view.files.includes(f)) {
      throw fail(
        "HND_TENANT_UNSIGNED",
        f,
        `T1: ${view.type} rules must carry the tenant's signature (${f} missing)`,
      );
    }
  }
  let m: z.infer<typeof TenantManifestSchema>;
  try {
    m = TenantManifestSchema.parse(JSON.parse(view.readText(TENANT_MANIFEST)));
  } catch (e) {
    throw fail(
      "HND_TENANT_MANIFEST",
      TENANT_MANIFEST,
      `T2: not a tenant manifest (${(e as Error).message.slice(0, 200)})`,
    );
  }
  if (m.contentType !== view.type || m.version !== view.version) {
    throw fail(
      "HND_TENANT_MANIFEST",
      TENANT_MANIFEST,
      `T2: signed for ${m.contentType} v${m.version}, not ${view.type} v${view.version}`,
    );
  }
  const payload = view.files.filter((f) => f !== TENANT_MANIFEST && f !== TENANT_SIGNATURE);
  for (const f of payload) {
    if (m.files[f] === undefined)
      throw fail("HND_TENANT_MANIFEST", f, "T2: not covered by the tenant's signature");
    if (m.files[f] !== sha384Hex(view.read(f)))
      throw fail("HND_TENANT_MANIFEST", f, "T2: differs from what the tenant signed");
  }
  for (const f of Object.keys(m.files)) {
    if (!payload.includes(f))
      throw fail("HND_TENANT_MANIFEST", f, "T2: signed by the tenant but not in the package");
  }
}

/** T3, T4: the signature verifies to the tenant root installed for this type — and to nothing else. */
export async function verifyTenantSignature(
  view: ContentView,
  caps: Pick<Capabilities, "workDir">,
  now = new Date(),
): Promise<string> {
  const rootFile = join(caps.workDir, TENANT_ROOT_FILE);
  if (!existsSync(rootFile)) {
    throw fail(
      "HND_TENANT_NOT_TRUSTED",
      TENANT_SIGNATURE,
      `T3: no tenant key is trusted for ${view.type} (agent appfeed trust-tenant ROOT.pem)`,
    );
  }
  const trust = TrustStore.fromPem(readFileSync(rootFile, "utf8"), rootFile);
  try {
    const v = await verifyDetached(view.read(TENANT_MANIFEST), view.read(TENANT_SIGNATURE), trust, {
      now,
      file: TENANT_SIGNATURE,
    });
    return v.signerSubject;
  } catch (e) {
    const d = describeError(e);
    throw fail(
      "HND_TENANT_SIGNATURE",
      TENANT_SIGNATURE,
      `T4: not signed by the tenant key trusted for ${view.type} (${d.code}: ${d.message})`,
    );
  }
}
