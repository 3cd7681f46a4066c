/**
 * The vendor's private content-signing PKI: an offline root, an intermediate
 * that issues signers, and a short-lived signer that signs content. The agent
 * trusts only the root; the short signer validity bounds how long a leaked
 * signer key (or content signed with it) stays usable.
 */
import { chmodSync, existsSync, mkdirSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { atomicWriteFile } from "../fsutil.ts";
import { log } from "../log.ts";
import { sha256Hex } from "./digest.ts";
import { x509 } from "./engine.ts";

export const KEY_FILES = {
  rootCert: "root.pem",
  rootKey: "root.key",
  intermediateCert: "intermediate.pem",
  intermediateKey: "intermediate.key",
  signerCert: "signer.pem",
  signerKey: "signer.key",
} as const;

export const CODE_SIGNING_EKU = "1.3.6.1.5.5.7.3.3";
export const SIGNING_CURVE = "P-384";
export const SIGNING_HASH = "SHA-384";

const DAY_MS = 24 * 60 * 60 * 1000;
export const ROOT_VALIDITY_DAYS = 3650;
export const INTERMEDIATE_VALIDITY_DAYS = 1825;
export const DEFAULT_SIGNER_VALIDITY_DAYS = 90;
/** Certificates start an hour early so hosts whose clocks lag a little still accept fresh content. */
export const NOT_BEFORE_BACKDATE_MS = 60 * 60 * 1000;

const log_ = log.child({ component: "crypto.keys" });

export interface SigningKeys {
  /** DER of the signer (end-entity) certificate. */
  signerCert: Uint8Array;
  /** DER of the intermediates, signer's issuer first. */
  chain: Uint8Array[];
  privateKey: CryptoKey;
}

export type Curve = "P-256" | "P-384" | "P-521";
export type Hash = "SHA-256" | "SHA-384" | "SHA-512";

export async function generateKeyPair(curve: Curve = SIGNING_CURVE): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey({ name: "ECDSA", namedCurve: curve }, true, ["sign", "verify"]);
}

/** Everything that shapes a certificate; omitted extensions are left out of the certificate. */
export interface CertificateProfile {
  /** Subject common name. */
  commonName: string;
  organization?: string;
  publicKey: CryptoKey;
  /** Issuer's subject name and signing key; absent means self-signed with `selfSigningKey`. */
  issuer?: { name: x509.Name; publicKey: CryptoKey; privateKey: CryptoKey };
  selfSigningKey?: CryptoKey;
  notBefore: Date;
  notAfter: Date;
  basicConstraints?: { ca: boolean; pathLength?: number };
  keyUsage?: x509.KeyUsageFlags;
  extendedKeyUsage?: string[];
  signingHash?: Hash;
  /** Further extensions, appended as given (tests use this for unknown critical ones). */
  extraExtensions?: x509.Extension[];
}

function subjectName(p: CertificateProfile): x509.JsonName {
  return [{ CN: [p.commonName] }, ...(p.organization ? [{ O: [p.organization] }] : [])];
}

/** A positive, 127-bit random serial: unpredictable (RFC 5280 §4.1.2.2, CA/B BR 7.1). */
function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return Buffer.from(bytes).toString("hex");
}

/** Issues one certificate. The building block for initKeys and for the test PKIs in testing.ts. */
export async function issueCertificate(p: CertificateProfile): Promise<x509.X509Certificate> {
  const signingKey = p.issuer?.privateKey ?? p.selfSigningKey;
  if (!signingKey) throw new TypeError("issueCertificate needs an issuer or a selfSigningKey");
  const extensions: x509.Extension[] = [];
  if (p.basicConstraints) {
    extensions.push(
      new x509.BasicConstraintsExtension(p.basicConstraints.ca, p.basicConstraints.pathLength, true),
    );
  }
  if (p.keyUsage !== undefined) extensions.push(new x509.KeyUsagesExtension(p.keyUsage, true));
  if (p.extendedKeyUsage) extensions.push(new x509.ExtendedKeyUsageExtension(p.extendedKeyUsage, false));
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(p.publicKey));
  extensions.push(await x509.AuthorityKeyIdentifierExtension.create(p.issuer?.publicKey ?? p.publicKey));
  extensions.push(...(p.extraExtensions ?? []));
  const subject = new x509.Name(subjectName(p));
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject,
    issuer: p.issuer?.name ?? subject,
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    publicKey: p.publicKey,
    signingKey,
    signingAlgorithm: { name: "ECDSA", hash: p.signingHash ?? SIGNING_HASH },
    extensions,
  });
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await crypto.subtle.exportKey("pkcs8", key), "PRIVATE KEY");
}

function addDays(d: Date, days: number): Date {
  return new Date(d.getTime() + days * DAY_MS);
}

/**
 * Creates root, intermediate and signer keys + certificates in `dir`.
 * Refuses to replace an existing PKI unless `force`: overwriting a root by
 * accident would orphan every agent that trusts it.
 */
export async function initKeys(
  dir: string,
  opts: { now?: Date; signerValidityDays?: number; name?: string; force?: boolean } = {},
): Promise<void> {
  const now = opts.now ?? new Date();
  const name = opts.name ?? "Outpost";
  const signerDays = opts.signerValidityDays ?? DEFAULT_SIGNER_VALIDITY_DAYS;
  if (!Number.isInteger(signerDays) || signerDays < 1 || signerDays > INTERMEDIATE_VALIDITY_DAYS) {
    throw new ConfigError(
      "CFG_KEYS_INVALID",
      `signer validity must be 1..${INTERMEDIATE_VALIDITY_DAYS} days, got ${signerDays}`,
      { file: dir },
    );
  }
  const existing = Object.values(KEY_FILES).filter((f) => existsSync(join(dir, f)));
  if (existing.length > 0 && !opts.force) {
    throw new ConfigError(
      "CFG_KEYS_EXIST",
      `${dir} already holds signing keys (${existing.join(", ")}); refusing to overwrite without --force`,
      { file: dir },
    );
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });

  const notBefore = new Date(now.getTime() - NOT_BEFORE_BACKDATE_MS);
  const [rootKeys, intermediateKeys, signerKeys] = await Promise.all([
    generateKeyPair(),
    generateKeyPair(),
    generateKeyPair(),
  ]);
  const root = await issueCertificate({
    commonName: `${name} Content Root CA`,
    organization: name,
    publicKey: rootKeys.publicKey,
    selfSigningKey: rootKeys.privateKey,
    notBefore,
    notAfter: addDays(now, ROOT_VALIDITY_DAYS),
    basicConstraints: { ca: true },
    keyUsage: x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
  });
  const intermediate = await issueCertificate({
    commonName: `${name} Content Intermediate CA`,
    organization: name,
    publicKey: intermediateKeys.publicKey,
    issuer: { name: root.subjectName, publicKey: rootKeys.publicKey, privateKey: rootKeys.privateKey },
    notBefore,
    notAfter: addDays(now, INTERMEDIATE_VALIDITY_DAYS),
    basicConstraints: { ca: true, pathLength: 0 },
    keyUsage: x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
  });
  const signer = await issueCertificate({
    commonName: `${name} Content Signer`,
    organization: name,
    publicKey: signerKeys.publicKey,
    issuer: {
      name: intermediate.subjectName,
      publicKey: intermediateKeys.publicKey,
      privateKey: intermediateKeys.privateKey,
    },
    notBefore,
    notAfter: addDays(now, signerDays),
    basicConstraints: { ca: false },
    keyUsage: x509.KeyUsageFlags.digitalSignature,
    extendedKeyUsage: [CODE_SIGNING_EKU],
  });

  writeKey(join(dir, KEY_FILES.rootKey), await privateKeyToPem(rootKeys.privateKey));
  writeKey(join(dir, KEY_FILES.intermediateKey), await privateKeyToPem(intermediateKeys.privateKey));
  writeKey(join(dir, KEY_FILES.signerKey), await privateKeyToPem(signerKeys.privateKey));
  atomicWriteFile(join(dir, KEY_FILES.rootCert), root.toString("pem"));
  atomicWriteFile(join(dir, KEY_FILES.intermediateCert), intermediate.toString("pem"));
  atomicWriteFile(join(dir, KEY_FILES.signerCert), signer.toString("pem"));
  log_.info("signing keys created", { dir, signerNotAfter: signer.notAfter.toISOString() });
}

/** Private keys are created 0600 and chmod'ed again so a permissive umask or an old file cannot widen them. */
function writeKey(path: string, pem: string): void {
  atomicWriteFile(path, pem, 0o600);
  chmodSync(path, 0o600);
}

export interface KeyFileInfo {
  name: string;
  path: string;
  kind: "certificate" | "private-key";
  /** SHA-256 of the certificate DER (certificates only). */
  sha256?: string;
  subject?: string;
  notAfter?: string;
}

/** Lists the key directory's files with certificate fingerprints, for `contentctl keys`. */
export async function describeKeyDir(dir: string): Promise<KeyFileInfo[]> {
  const out: KeyFileInfo[] = [];
  for (const name of Object.values(KEY_FILES)) {
    const path = join(dir, name);
    if (name.endsWith(".key")) {
      out.push({ name, path, kind: "private-key" });
      continue;
    }
    const cert = new x509.X509Certificate(await readFile(path, "utf8"));
    out.push({
      name,
      path,
      kind: "certificate",
      sha256: sha256Hex(new Uint8Array(cert.rawData)),
      subject: cert.subject,
      notAfter: cert.notAfter.toISOString(),
    });
  }
  return out;
}

async function readKeyFile(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    throw new ConfigError("CFG_SIGNING_KEYS", `cannot read ${path}: ${(e as Error).message}`, {
      file: path,
      cause: e,
    });
  }
}

function pemBlocks(pem: string, type: string, path: string): Uint8Array<ArrayBuffer>[] {
  let blocks: { type: string; rawData: ArrayBuffer }[];
  try {
    blocks = x509.PemConverter.decodeWithHeaders(pem);
  } catch (e) {
    throw new ConfigError("CFG_SIGNING_KEYS", `${path} is not valid PEM`, { file: path, cause: e });
  }
  const found = blocks.filter((b) => b.type === type).map((b) => new Uint8Array(b.rawData));
  if (found.length === 0)
    throw new ConfigError("CFG_SIGNING_KEYS", `${path} holds no ${type}`, { file: path });
  return found;
}

/**
 * Loads what `signDetached` needs: the signer key, its certificate and the
 * intermediates. The key is checked against the certificate up front so a
 * mismatched pair fails here, not as a signature every agent rejects.
 */
export async function loadSigningKeys(dir: string): Promise<SigningKeys> {
  const keyPath = join(dir, KEY_FILES.signerKey);
  const certPath = join(dir, KEY_FILES.signerCert);
  const chainPath = join(dir, KEY_FILES.intermediateCert);
  const [keyPem, certPem, chainPem] = await Promise.all([
    readKeyFile(keyPath),
    readKeyFile(certPath),
    readKeyFile(chainPath),
  ]);
  if ((statSync(keyPath).mode & 0o077) !== 0) {
    log_.warn("signer key is readable by group or others", { file: keyPath });
  }
  const signerCert = pemBlocks(certPem, "CERTIFICATE", certPath)[0]!;
  const chain = pemBlocks(chainPem, "CERTIFICATE", chainPath);
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(signerCert);
  } catch (e) {
    throw new ConfigError("CFG_SIGNING_KEYS", `${certPath} is not a valid certificate`, {
      file: certPath,
      cause: e,
    });
  }
  const curve = (cert.publicKey.algorithm as { namedCurve?: string }).namedCurve;
  if (curve !== SIGNING_CURVE) {
    throw new ConfigError(
      "CFG_SIGNING_KEYS",
      `${certPath} has a ${curve ?? "non-EC"} key; ${SIGNING_CURVE} required`,
      {
        file: certPath,
      },
    );
  }
  let privateKey: CryptoKey;
  try {
    privateKey = await crypto.subtle.importKey(
      "pkcs8",
      pemBlocks(keyPem, "PRIVATE KEY", keyPath)[0]!,
      { name: "ECDSA", namedCurve: SIGNING_CURVE },
      false,
      ["sign"],
    );
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError("CFG_SIGNING_KEYS", `${keyPath} is not a PKCS#8 ${SIGNING_CURVE} key`, {
      file: keyPath,
      cause: e,
    });
  }
  const probe = crypto.getRandomValues(new Uint8Array(32));
  const algorithm = { name: "ECDSA", hash: SIGNING_HASH };
  const probeSig = await crypto.subtle.sign(algorithm, privateKey, probe);
  const publicKey = await cert.publicKey.export({ name: "ECDSA", namedCurve: SIGNING_CURVE }, ["verify"]);
  if (!(await crypto.subtle.verify(algorithm, publicKey, probeSig, probe))) {
    throw new ConfigError("CFG_SIGNING_KEYS", `${keyPath} does not belong to ${certPath}`, { file: keyPath });
  }
  return { signerCert, chain, privateKey };
}
