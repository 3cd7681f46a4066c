/**
 * Opening a content package: bytes in, verified object out. Pure — no file
 * system, network or clock access (the caller passes `now`) — so every rule
 * is testable in isolation, in the manner of python-tuf's trusted metadata
 * set. Each check cites the rule it enforces (PK1…PK7, as numbered in
 * docs/package-format.md, "What the agent checks"). A package is either
 * returned whole and verified or refused with one typed error; nothing in it
 * is trusted before the manifest signature is verified.
 */
import type { VerifiedSignature } from "../crypto/cms.ts";
import { sha384Hex } from "../crypto/digest.ts";
import { type Trust, verifySignature } from "../crypto/verify.ts";
import { PackageError } from "../errors.ts";
import { type Manifest, PAYLOAD_DIR, parseManifest } from "./manifest.ts";
import { readTar, type TarEntry } from "./tar.ts";

export const MANIFEST_NAME = "manifest.json";
export const SIGNATURE_NAME = "manifest.p7s";
/** A detached signature with its chain is a few KiB; refuse anything far beyond that before parsing it. */
export const MAX_SIGNATURE_BYTES = 256 * 1024;

export interface VerifiedPackage {
  manifest: Manifest;
  signingTime: Date;
  signer: VerifiedSignature;
  manifestBytes: Uint8Array;
  signatureBytes: Uint8Array;
  /** Payload-relative path → bytes, in manifest order. Views into the package bytes: do not mutate. */
  files: Map<string, Uint8Array>;
}

export interface OpenPackageOptions {
  /** The package's name (file name or URL), used in every error. */
  file: string;
  /** The time certificates and signingTime are judged against. */
  now: Date;
  /** Refuse a package of another content type (e.g. one fetched under another type's index entry). */
  expectedType?: string;
  maxEntries?: number;
  maxEntryBytes?: number;
}

/** A package whose layout and manifest are well-formed but whose signature is NOT verified yet. */
export interface UnverifiedPackage {
  manifest: Manifest;
  manifestBytes: Uint8Array;
  signatureBytes: Uint8Array;
  /** Every entry under payload/, keyed by its payload-relative path (directories end with "/"). */
  payload: Map<string, TarEntry>;
}

export async function openPackage(
  bytes: Uint8Array,
  trust: Trust,
  opts: OpenPackageOptions,
): Promise<VerifiedPackage> {
  const { file } = opts;
  const pkg = readPackage(bytes, opts);

  // PK4 — the manifest bytes, exactly as stored, carry a valid detached CMS signature from a signer
  // chaining to a trusted root, valid at signingTime and now (SignatureError, SIG_*, propagates).
  const signer = await verifySignature(pkg.manifestBytes, pkg.signatureBytes, trust, { now: opts.now, file });

  // PK5 — the package is of the content type the caller asked for: a validly signed package of
  // another type must not be installed in its place.
  if (opts.expectedType !== undefined && pkg.manifest.type !== opts.expectedType) {
    throw new PackageError(
      "PKG_WRONG_TYPE",
      `${file}: package is of type ${pkg.manifest.type}, expected ${opts.expectedType}`,
      { file, details: { type: pkg.manifest.type, expectedType: opts.expectedType } },
    );
  }

  const files = checkPayload(pkg, file);
  return {
    manifest: pkg.manifest,
    signingTime: signer.signingTime,
    signer,
    manifestBytes: pkg.manifestBytes,
    signatureBytes: pkg.signatureBytes,
    files,
  };
}

/**
 * Steps PK1–PK3: container, layout and manifest. Exported for `contentctl
 * inspect`, which shows packages it cannot verify; nothing returned here is
 * trustworthy until `verifyDetached` has accepted the manifest bytes.
 */
export function readPackage(
  bytes: Uint8Array,
  opts: { file: string; maxEntries?: number; maxEntryBytes?: number },
): UnverifiedPackage {
  const { file } = opts;

  // PK1 — the container is a well-formed ustar archive of regular files and directories with safe,
  // unique paths and sane sizes (PKG_TAR_*).
  const entries = readTar(bytes, opts);

  // PK2 — layout: manifest.json first, manifest.p7s second (so both can be checked before any payload
  // is read), then only entries under payload/.
  const layout = (reason: string, entry?: string) =>
    new PackageError("PKG_LAYOUT", `${file}: ${reason}`, { file, ...(entry ? { details: { entry } } : {}) });
  const [manifestEntry, signatureEntry, ...rest] = entries;
  if (manifestEntry?.path !== MANIFEST_NAME || manifestEntry.type !== "file") {
    throw layout(`first entry must be the file ${MANIFEST_NAME}`, manifestEntry?.path);
  }
  if (signatureEntry?.path !== SIGNATURE_NAME || signatureEntry.type !== "file") {
    throw layout(`second entry must be the file ${SIGNATURE_NAME}`, signatureEntry?.path);
  }
  const payload = new Map<string, TarEntry>();
  for (const entry of rest) {
    if (entry.path === PAYLOAD_DIR) continue;
    if (!entry.path.startsWith(PAYLOAD_DIR)) {
      throw layout(`entry ${JSON.stringify(entry.path)} is outside payload/`, entry.path);
    }
    payload.set(entry.path.slice(PAYLOAD_DIR.length), entry);
  }

  // PK3 — manifest.json is at most 1 MiB, strict UTF-8 JSON, and matches the schema exactly
  // (PKG_MANIFEST_TOO_LARGE, PKG_MANIFEST_INVALID); the signature blob is bounded too.
  const manifestBytes = manifestEntry.data;
  const manifest = parseManifest(manifestBytes, file);
  const signatureBytes = signatureEntry.data;
  if (signatureBytes.length > MAX_SIGNATURE_BYTES) {
    throw new PackageError(
      "PKG_SIGNATURE_TOO_LARGE",
      `${file}: ${SIGNATURE_NAME} is ${signatureBytes.length} bytes, limit is ${MAX_SIGNATURE_BYTES}`,
      { file },
    );
  }
  return { manifest, manifestBytes, signatureBytes, payload };
}

/**
 * Steps PK6–PK7: the payload is exactly what the manifest lists. Structural
 * checks (presence, size, nothing extra) run before any hashing so a
 * malformed package costs no digest work.
 */
export function checkPayload(pkg: UnverifiedPackage, file: string): Map<string, Uint8Array> {
  const problem = (code: string, path: string, reason: string) =>
    new PackageError(code, `${file}: payload/${path}: ${reason}`, { file, details: { path } });
  const listed = new Set<string>();
  const neededDirs = new Set<string>();

  // PK6 — every file the manifest lists is present as a regular file of the listed size.
  for (const f of pkg.manifest.files) {
    const entry = pkg.payload.get(f.path);
    if (entry?.type !== "file")
      throw problem("PKG_FILE_MISSING", f.path, "listed in the manifest but not in the package");
    if (entry.data.length !== f.size) {
      throw problem(
        "PKG_FILE_SIZE_MISMATCH",
        f.path,
        `size is ${entry.data.length}, manifest says ${f.size}`,
      );
    }
    listed.add(f.path);
    const parts = f.path.split("/");
    for (let i = 1; i < parts.length; i++) neededDirs.add(`${parts.slice(0, i).join("/")}/`);
  }

  // PK7 — nothing under payload/ escapes the signed manifest: no unlisted file, and no directory that
  // holds no listed file (an empty directory is content the signer did not describe).
  for (const [path, entry] of pkg.payload) {
    if (entry.type === "file" ? !listed.has(path) : !neededDirs.has(path)) {
      throw problem(
        "PKG_FILE_UNLISTED",
        path,
        entry.type === "file" ? "not listed in the manifest" : "directory holds no listed file",
      );
    }
  }

  // PK6 (continued) — each file's SHA-384 matches the manifest, which binds the payload to the signature.
  const files = new Map<string, Uint8Array>();
  for (const f of pkg.manifest.files) {
    const data = pkg.payload.get(f.path)!.data;
    const digest = sha384Hex(data);
    if (digest !== f.sha384)
      throw problem("PKG_FILE_DIGEST_MISMATCH", f.path, `SHA-384 is ${digest}, manifest says ${f.sha384}`);
    files.set(f.path, data);
  }
  return files;
}
