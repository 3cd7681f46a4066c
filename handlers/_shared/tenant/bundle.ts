/**
 * Vendor side of the tenant policy bundle (core/effective/bundle.ts): the
 * management console's policy documents and the Flags Service's words for
 * one tenant, in one signed file the fleet service serves from the
 * repository folder (`contentctl serve`, with or without --release). Used by
 * `contentctl policy set` (RemapperRules) and `contentctl flags set` (Flags).
 *
 * Every change re-signs the whole bundle with serial + 1, signature first
 * and bundle second (an agent that races sees a mismatched pair, refuses it
 * under B1 and retries next cycle, as with the group index).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { TrustStore } from "../../../core/crypto/cms.ts";
import { signDetached } from "../../../core/crypto/cms-sign.ts";
import { KEY_FILES, loadSigningKeys } from "../../../core/crypto/keys.ts";
import {
  bundlePath,
  bundleSigPath,
  checkTenant,
  type PolicyBundle,
  parseBundle,
  serializeBundle,
  verifyBundle,
} from "../../../core/effective/bundle.ts";
import { atomicWriteFile } from "../../../core/fsutil.ts";

export interface TenantBundleOptions {
  repo: string;
  tenant: string;
  /** Key directory made by `contentctl keys init`. */
  keys: string;
  now?: Date;
}

/** The tenant's current bundle, or null when none was published. */
export function readTenantBundle(repo: string, tenant: string): PolicyBundle | null {
  const file = join(repo, bundlePath(checkTenant(tenant)));
  return existsSync(file) ? parseBundle(readFileSync(file), file) : null;
}

/** Applies `change` to the tenant's bundle (a fresh one if none), re-signs it with serial + 1, writes it. */
export async function updateTenantBundle(
  opts: TenantBundleOptions,
  change: (b: PolicyBundle) => void,
): Promise<PolicyBundle> {
  const tenant = checkTenant(opts.tenant);
  const now = opts.now ?? new Date();
  const previous = readTenantBundle(opts.repo, tenant);
  const next: PolicyBundle = structuredClone(
    previous ?? { schema: 1, tenant, serial: 0, issued: now.toISOString(), documents: [], flags: {} },
  );
  change(next);
  next.serial = (previous?.serial ?? 0) + 1;
  next.issued = now.toISOString();
  next.documents.sort((a, b) => (a.name < b.name ? -1 : 1));
  const bytes = serializeBundle(next);
  // Never sign what an agent would refuse.
  parseBundle(bytes, bundlePath(tenant));
  const sig = await signDetached(bytes, await loadSigningKeys(opts.keys), { signingTime: now });
  const rootPem = join(opts.keys, KEY_FILES.rootCert);
  if (existsSync(rootPem)) {
    await verifyBundle(bytes, sig, await TrustStore.load(rootPem), { now, file: bundlePath(tenant), tenant });
  }
  atomicWriteFile(join(opts.repo, bundleSigPath(tenant)), sig);
  atomicWriteFile(join(opts.repo, bundlePath(tenant)), bytes);
  return next;
}
