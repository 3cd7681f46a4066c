/**
 * `sha256` and `signer` exclusions in scans (docs/exclusions.md, "Digests
 * and signers in scans"). A path exclusion is judged before a file is read.
 * A digest or a signer is known only once the scanner has read the object —
 * it hashes what it scans and verifies Authenticode (handlers/DatasetA/
 * authenticode.ts) — so these are judged on the scan's outcome: the
 * detections of an excluded object are **suppressed** (not reported, not
 * blocked, no Live Protection lookup, no sample), the scan counts them.
 * Hashing every file in the supervisor first, to skip the scan for the rare
 * excluded digest, would cost every other file a second pass; on access, the
 * verdict cache keeps an excluded file from being scanned again until it
 * changes.
 *
 * What is matched, per detection: the object the detection is in (its
 * SHA-256, and its Authenticode signer when the signature is *valid*), and
 * the scanned object as a whole (so excluding a file's digest or signer
 * covers detections in any member of it). A signer is the SHA-256 of the
 * signer certificate — the identity LocalRepData's signer list keys by — and
 * counts only when the signature verifies (A1–A5): an invalid or absent
 * signature never matches a signer exclusion, and a certificate's name is
 * never trusted (anyone can put any name in a certificate).
 */
import type { ExclusionMatcher } from "../../../core/exclusions/matcher.ts";
import type { ExclusionScope } from "../../../core/exclusions-config.ts";
import type { Detection, ExecutableFound, ScanOutcome } from "../engine.ts";

/** The verified Authenticode signer (certificate SHA-256) of the object at `path`, if any. */
export function validSigner(
  o: Pick<ScanOutcome, "executables">,
  path: readonly string[],
): string | undefined {
  const exe = o.executables.find(
    (x) => x.path.length === path.length && x.path.every((p, i) => p === path[i]),
  );
  return exe?.authenticode?.status === "valid" ? exe.authenticode.signer.thumbprint : undefined;
}

export interface ObjectExclusion {
  /** The scanned object as a whole is excluded by its digest or signer. */
  readonly whole: boolean;
  /** The detection is suppressed: its own object, or the whole object, is excluded. */
  detection(d: Pick<Detection, "path" | "sha256">): boolean;
  /** Which of an executable's identities an exclusion names, if one does. */
  executable(x: ExecutableFound): "sha256" | "signer" | undefined;
}

const NONE: ObjectExclusion = { whole: false, detection: () => false, executable: () => undefined };

export function objectExclusion(
  matcher: ExclusionMatcher | undefined,
  scope: ExclusionScope | undefined,
  target: string,
  o: ScanOutcome,
): ObjectExclusion {
  if (!matcher || !scope || matcher.size === 0) return NONE;
  const byDigest = (sha256: string | undefined) => !!sha256 && matcher.digest(scope, sha256);
  const bySigner = (signer: string | undefined) => !!signer && matcher.signer(scope, signer);
  const whole = byDigest(o.sha256) || bySigner(validSigner(o, [])) || matcher.file(scope, target);
  return {
    whole,
    detection: (d) => whole || byDigest(d.sha256) || bySigner(validSigner(o, d.path)),
    executable: (x) =>
      byDigest(x.sha256) ? "sha256" : bySigner(validSigner(o, x.path)) ? "signer" : undefined,
  };
}
