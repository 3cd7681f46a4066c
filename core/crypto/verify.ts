/**
 * Signature checks as the update client, the policy bundle and the package
 * reader call them: through a trust store in this process (TrustStore, which
 * loads the X.509 and CMS libraries here: contentctl, tests, an agent with
 * `hosts.isolation: in-process`) or through one whose checks run in a
 * short-lived worker process (RemoteTrust: the supervisor). The rules are
 * the same code either way (cms-verify.ts). This module imports neither
 * library, so a process that only ever checks through a RemoteTrust never
 * evaluates them.
 */
import type { TrustStore, VerifiedSignature } from "./cms.ts";
import type { VerifyOptions } from "./cms-verify.ts";
import { RemoteTrust } from "./remote-trust.ts";

export type Trust = TrustStore | RemoteTrust;

export async function verifySignature(
  content: Uint8Array,
  signature: Uint8Array,
  trust: Trust,
  opts: VerifyOptions,
): Promise<VerifiedSignature> {
  if (trust instanceof RemoteTrust) return trust.verify(content, signature, opts);
  const { verifyDetached } = await import("./cms-verify.ts");
  return verifyDetached(content, signature, trust, opts);
}
