/**
 * Trust-store facts that need the CMS verifier: whether the trust store
 * verifies the agent's own cached indexes. This module pulls in the X.509
 * stack, so only the supervisor and the CLI import it — never the handler
 * module every host process loads. They pass the result to the repair
 * host inside facts.json; the host re-checks the PEM structure itself and
 * uses the verification only while the trust store's bytes are unchanged.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { TrustStore } from "../../core/crypto/cms.ts";
import { verifyDetached } from "../../core/crypto/cms-verify.ts";
import { describeError } from "../../core/errors.ts";
import type { CachedIndexFacts, TrustFacts } from "./facts.ts";
import { cacheGroups, inspectCacheStructure, sha256File } from "./inspect.ts";

export async function inspectTrust(
  trustPath: string,
  indexCacheDir: string,
  now = new Date(),
): Promise<TrustFacts> {
  let trust: TrustStore | null = null;
  let pem: TrustFacts["pem"];
  try {
    trust = TrustStore.fromPem(readFileSync(trustPath, "utf8"), trustPath);
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
        await verifyDetached(
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
