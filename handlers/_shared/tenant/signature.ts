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
 * rules never run, and the tenant key signs nothing else.
 *
 * A package may arrive without a tenant signature (the vendor's example,
 * packed without --tenant-keys) or before the agent trusts a tenant key.
 * Such content is installed **inert**: it verified as a package, but no rule
 * of it runs (not even its top-level chunk) and it excludes nothing. Only
 * rules that verify to the installed tenant root ever run.
 *
 *   T1  unsigned (no tenant.json / .p7s): inert while no tenant root is installed (info);
 *       refused once one is (an agent that trusts a tenant takes only its rules)
 *   T2  tenant.json and .p7s come together, name this type and version and list exactly the
 *       other payload files with their SHA-384 (validate, pure): else refused
 *   T3  signed, but no tenant root is installed: inert (amber: the tenant meant them to run)
 *   T4  signed, a tenant root is installed, the signature does not verify to it (a vendor
 *       signature never does): refused
 *   T5  the verdict is taken again before every run, so `trust-tenant` after install takes
 *       effect at the next run, and a changed root stops rules it does not verify
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { sha384Hex } from "../../../core/crypto/digest.ts";
import type { SigningKeys } from "../../../core/crypto/keys.ts";
import {
  type CryptoWorkerClient,
  RemoteTrust,
  sharedCryptoWorker,
} from "../../../core/crypto/remote-trust.ts";
import { deferredImport } from "../../../core/deferred-import.ts";
import { describeError, HandlerError } from "../../../core/errors.ts";
import type { Capabilities, ContentView } from "../../../core/handler/contract.ts";
import { lazySchema } from "../../../core/schema/lazy-schema.ts";
import { z } from "../../../core/schema/zod.ts";

// The X.509 and CMS stack (@peculiar/x509, pkijs, asn1js: ~270 modules) is needed to check a tenant
// signature against an installed tenant root (T4), and to make one (contentctl). Once evaluated, a
// module stays for the life of the process, so the appfeed host never evaluates it: T4 runs in a
// short-lived `agent crypto-worker` (core/crypto/remote-trust.ts, the supervisor's own way), with the
// same rules (cms-verify.ts). The demo agent's appfeed host, which checks one: 12.8 → 8.0 MiB of
// anonymous memory (issue 21, Footprint). Only the vendor side imports the stack here.
const cmsSign = deferredImport(() => import("../../../core/crypto/cms-sign.ts"));

export const TENANT_MANIFEST = "tenant.json";
export const TENANT_SIGNATURE = "tenant.json.p7s";
/** The tenant trust root in the appfeed group's work directory. */
export const TENANT_ROOT_FILE = "tenant-root.pem";

const TenantManifestSchema = lazySchema(() =>
  z.strictObject({
    schema: z.literal(1),
    contentType: z.string(),
    version: z.int().check(z.positive()),
    files: z.record(z.string(), z.string().check(z.regex(/^[0-9a-f]{96}$/))),
  }),
);

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
    [TENANT_SIGNATURE, await (await cmsSign()).signDetached(manifest, o.keys)],
  ]);
}

/** Whether the package carries a tenant signature at all (T1). */
export function isTenantSigned(view: Pick<ContentView, "files">): boolean {
  return view.files.includes(TENANT_MANIFEST) || view.files.includes(TENANT_SIGNATURE);
}

/** T2: a tenant manifest, where there is one, covers exactly this payload. Pure. */
export function validateTenantManifest(view: ContentView): void {
  if (!isTenantSigned(view)) return; // T1: unsigned; load() decides between inert and refused.
  for (const f of [TENANT_MANIFEST, TENANT_SIGNATURE]) {
    if (!view.files.includes(f)) {
      throw fail("HND_TENANT_MANIFEST", f, `T2: half a tenant signature (${f} missing)`);
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

/**
 * What the verdict reads of a package, kept after load (a ContentView is only good during load):
 * its type, version, and the tenant manifest and signature if it has them — T2 at validate
 * tied the manifest to every other payload file.
 */
export interface TenantEvidence {
  type: string;
  version: number;
  files: string[];
  read(file: string): Uint8Array;
}

export function tenantEvidence(view: ContentView): TenantEvidence {
  const kept = new Map(
    [TENANT_MANIFEST, TENANT_SIGNATURE].filter((f) => view.files.includes(f)).map((f) => [f, view.read(f)]),
  );
  return {
    type: view.type,
    version: view.version,
    files: [...kept.keys()],
    read: (f) => {
      const data = kept.get(f);
      if (!data) throw fail("HND_TENANT_UNSIGNED", f, "not in the package");
      return data;
    },
  };
}

/** Why a USERAPPFEED package's rules may not run (status, health and `agent exclusions` show it). */
export interface TenantHold {
  code: "HND_TENANT_UNSIGNED" | "HND_TENANT_NOT_TRUSTED" | "HND_TENANT_SIGNATURE";
  /** info: nothing asked for these rules to run (no tenant root, no tenant signature); amber: something did. */
  level: "info" | "amber";
  message: string;
}

/** `refuse`: a tenant root is installed, so this package is refused at install rather than held. */
export type TenantVerdict = { run: true; signer: string } | { run: false; hold: TenantHold; refuse: boolean };

/**
 * T1, T3, T4: may this package's rules run now? Never throws for a signature problem: `refuse`
 * says whether load refuses the package (a tenant root is installed, so only rules that verify
 * to it are taken) or installs it inert; before a later run (T5) any hold keeps it inert.
 */
export async function tenantVerdict(
  view: TenantEvidence,
  caps: Pick<Capabilities, "workDir">,
  now = new Date(),
  worker: CryptoWorkerClient = sharedCryptoWorker(),
): Promise<TenantVerdict> {
  const rootFile = join(caps.workDir, TENANT_ROOT_FILE);
  const trusted = existsSync(rootFile);
  if (!isTenantSigned(view)) {
    return {
      run: false,
      refuse: trusted,
      hold: trusted
        ? {
            code: "HND_TENANT_UNSIGNED",
            level: "amber",
            message: `T1: ${view.type} v${view.version} carries no tenant signature but a tenant key is trusted; its rules do not run (repack with contentctl rules pack --tenant-keys)`,
          }
        : {
            code: "HND_TENANT_UNSIGNED",
            level: "info",
            message: `T1: ${view.type} v${view.version} carries no tenant signature; its rules are held inert until the tenant signs them (contentctl rules pack --tenant-keys) and the agent trusts that key (agent appfeed trust-tenant)`,
          },
    };
  }
  if (!trusted) {
    return {
      run: false,
      refuse: false,
      hold: {
        code: "HND_TENANT_NOT_TRUSTED",
        level: "amber",
        message: `T3: ${view.type} v${view.version} is tenant-signed but no tenant key is trusted for it; its rules are held inert (agent appfeed trust-tenant ROOT.pem)`,
      },
    };
  }
  // A root that does not parse fails the run or the load (CFG_TRUST_STORE), as it always has.
  const trust = await RemoteTrust.load(rootFile, worker);
  try {
    const v = await trust.verify(view.read(TENANT_MANIFEST), view.read(TENANT_SIGNATURE), {
      now,
      file: TENANT_SIGNATURE,
    });
    return { run: true, signer: v.signerSubject };
  } catch (e) {
    const d = describeError(e);
    // A check that did not run (the worker could not start, died or timed out) says nothing about
    // the signature: the run fails and says so, rather than refusing the tenant's rules (T4).
    if (d.code === "SIG_VERIFIER_FAILED") throw e;
    return {
      run: false,
      refuse: true,
      hold: {
        code: "HND_TENANT_SIGNATURE",
        level: "amber",
        message: `T4: ${view.type} v${view.version} is not signed by the tenant key trusted for it (${d.code}: ${d.message}); its rules do not run`,
      },
    };
  }
}
