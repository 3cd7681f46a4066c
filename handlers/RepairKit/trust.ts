/**
 * Trust-store facts that need the CMS verifier: whether the trust store
 * verifies the agent's own cached indexes. Only the supervisor and the CLI
 * run this — never the handler module every host process loads. They pass
 * the result to the repair host inside facts.json; the host re-checks the
 * PEM structure itself and uses the verification only while the trust
 * store's bytes are unchanged.
 *
 * The checks go through the caller's kind of trust store (`loadTrust`): the
 * supervisor's runs them in its crypto worker (core/crypto/remote-trust.ts),
 * so its repair pass after each update cycle does not load the X.509 and
 * CMS libraries into it for good (issue 21: they were back in the
 * supervisor's heap after the first cycle's repair pass, ~6 MiB); a one-shot
 * CLI checks in-process.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type Trust, verifySignature } from "../../core/crypto/verify.ts";
import { describeError } from "../../core/errors.ts";
import type { CachedIndexFacts, TrustFacts } from "./facts.ts";
import { cacheGroups, inspectCacheStructure, sha256File } from "./inspect.ts";

/** A trust store of the caller's kind for the PEM bundle at `path` (throws CFG_TRUST_STORE). */
export type TrustLoader = (path: string) => Promise<Trust>;

/** In this process: the CLI's way (it runs once and exits). */
export const localTrust: TrustLoader = async (path) => {
  const { TrustStore } = await import("../../core/crypto/cms.ts");
  return TrustStore.load(path);
};

export async function inspectTrust(
  trustPath: string,
  indexCacheDir: string,
  now = new Date(),
  loadTrust: TrustLoader = localTrust,
): Promise<TrustFacts> {
  let trust: Trust | null = null;
  let pem: TrustFacts["pem"];
  try {
    trust = await loadTrust(trustPath);
    pem = { ok: true, certs: trust.roots.length };
  } catch (e) {
    pem = { ok: false, certs: 0, error: describeError(e).message };
  }
  const caches: CachedIndexFacts[] = [];
  for (const group of cacheGroups(indexCacheDir)) {
    const c = inspectCacheStructure(indexCacheDir, group);
    if (c.ok && trust) {
      const dir = join(indexCacheDir, group);
      try {
        await verifySignature(
          new Uint8Array(readFileSync(join(dir, "index.json"))),
          new Uint8Array(readFileSync(join(dir, "index.p7s"))),
          trust,
          { now, file: join(dir, "index.json") },
        );
        c.verified = true;
      } catch {
        c.verified = false;
        c.ok = false;
        c.problem = "signature does not verify with the trust store";
      }
    }
    caches.push(c);
  }
  const judged = caches.filter((c) => c.verified !== null);
  return {
    trustSha256: sha256File(trustPath),
    pem,
    caches,
    verifies: trust ? (judged.length ? judged.some((c) => c.verified) : null) : false,
  };
}
