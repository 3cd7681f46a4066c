/**
 * Detached CMS SignedData (RFC 5652) over content packages, and its
 * verification against a pinned trust store.
 *
 * Verification is written out check by check, python-tuf style: each check
 * names the rule it enforces and fails with its own SIG_* code. Chain
 * building and validation are done here with @peculiar/x509 rather than by
 * pkijs's chain engine so that every rule is visible and tested. The content
 * digest is computed with Bun's native hasher (it dominates the cost for
 * large packages) and the signature is checked over the DER signed
 * attributes with WebCrypto; pkijs only parses and encodes structures.
 */
import { readFile } from "node:fs/promises";
import * as asn1js from "asn1js";
import { ConfigError, type ErrorDetails, SignatureError } from "../errors.ts";
import { bytesEqual, sha256Hex, sha384Hex } from "./digest.ts";
import { pkijs, x509 } from "./engine.ts";
import { CODE_SIGNING_EKU, type Hash, type SigningKeys } from "./keys.ts";

export const OID = {
  data: "1.2.840.113549.1.7.1",
  signedData: "1.2.840.113549.1.7.2",
  contentType: "1.2.840.113549.1.9.3",
  messageDigest: "1.2.840.113549.1.9.4",
  signingTime: "1.2.840.113549.1.9.5",
  sha256: "2.16.840.1.101.3.4.2.1",
  sha384: "2.16.840.1.101.3.4.2.2",
  sha512: "2.16.840.1.101.3.4.2.3",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  ecdsaWithSha384: "1.2.840.10045.4.3.3",
  ecdsaWithSha512: "1.2.840.10045.4.3.4",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectKeyIdentifier: "2.5.29.14",
  authorityKeyIdentifier: "2.5.29.35",
} as const;

const OID_NAMES = new Map<string, string>(Object.entries(OID).map(([name, oid]) => [oid, name]));
function oidName(oid: string): string {
  const name = OID_NAMES.get(oid);
  return name ? `${name} (${oid})` : oid;
}

/** Tolerated difference between the signer's clock and ours when judging signingTime. */
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;
/** Longest accepted path, signer to trust anchor inclusive; ours is 3. */
export const MAX_PATH_LENGTH = 5;
/** A real signature embeds 2 certificates; more is an attempt to make path building expensive. */
export const MAX_EMBEDDED_CERTS = 8;

const HASH_OIDS: Record<Hash, { digest: string; signature: string; bun: "sha256" | "sha384" | "sha512" }> = {
  "SHA-256": { digest: OID.sha256, signature: OID.ecdsaWithSha256, bun: "sha256" },
  "SHA-384": { digest: OID.sha384, signature: OID.ecdsaWithSha384, bun: "sha384" },
  "SHA-512": { digest: OID.sha512, signature: OID.ecdsaWithSha512, bun: "sha512" },
};

/** The only curves and certificate signature hashes the content PKI may use. */
const STRONG_CURVES = new Set(["P-384", "P-521"]);
const STRONG_CERT_HASHES = new Set(["SHA-384", "SHA-512"]);
const SIGNER_CURVE = "P-384";
/** Extensions whose semantics this verifier enforces; any other critical one is rejected. */
const UNDERSTOOD_EXTENSIONS = new Set<string>([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
]);

const CURVE_BYTES: Record<string, number> = { "P-256": 32, "P-384": 48, "P-521": 66 };

// ---------------------------------------------------------------------------
// ECDSA signature encoding: CMS carries Ecdsa-Sig-Value (DER SEQUENCE of two
// INTEGERs); WebCrypto produces and expects the raw r||s concatenation.

function derLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

function derInteger(unsigned: Uint8Array): Uint8Array {
  let start = 0;
  while (start < unsigned.length - 1 && unsigned[start] === 0) start++;
  const body = unsigned.subarray(start);
  const pad = (body[0] ?? 0) & 0x80 ? 1 : 0;
  const out = new Uint8Array(2 + pad + body.length);
  out.set([0x02, pad + body.length]);
  out.set(body, 2 + pad);
  return out;
}

export function ecdsaRawToDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  const r = derInteger(raw.subarray(0, half));
  const s = derInteger(raw.subarray(half));
  const len = derLength(r.length + s.length);
  const out = new Uint8Array(1 + len.length + r.length + s.length);
  out[0] = 0x30;
  out.set(len, 1);
  out.set(r, 1 + len.length);
  out.set(s, 1 + len.length + r.length);
  return out;
}

/** Returns null when `der` is not a well-formed Ecdsa-Sig-Value for a curve of `size` bytes. */
export function ecdsaDerToRaw(der: Uint8Array, size: number): Uint8Array | null {
  const parsed = asn1js.fromBER(der);
  if (parsed.offset !== der.byteLength || !(parsed.result instanceof asn1js.Sequence)) return null;
  const parts = parsed.result.valueBlock.value;
  if (parts.length !== 2) return null;
  const raw = new Uint8Array(2 * size);
  for (const [i, part] of parts.entries()) {
    if (!(part instanceof asn1js.Integer)) return null;
    let v = part.valueBlock.valueHexView;
    if ((v[0] ?? 0) & 0x80) return null; // negative
    while (v.length > 1 && v[0] === 0) v = v.subarray(1);
    if (v.length > size) return null;
    raw.set(v, i * size + (size - v.length));
  }
  return raw;
}

// ---------------------------------------------------------------------------
// Signing

function digestWith(hash: Hash, content: Uint8Array): Uint8Array {
  return new Uint8Array(Bun.CryptoHasher.hash(HASH_OIDS[hash].bun, content));
}

function derBytes(schema: { toBER(sizeOnly?: boolean): ArrayBuffer }): Uint8Array {
  return new Uint8Array(schema.toBER(false));
}

/** DER orders SET OF elements by their encodings (X.690 §11.6); OpenSSL re-encodes and relies on it. */
function sortForDerSet(attributes: pkijs.Attribute[]): pkijs.Attribute[] {
  const encoded = attributes.map((a) => ({ a, der: derBytes(a.toSchema()) }));
  encoded.sort((x, y) => {
    const n = Math.min(x.der.length, y.der.length);
    for (let i = 0; i < n; i++) if (x.der[i] !== y.der[i]) return x.der[i]! - y.der[i]!;
    return x.der.length - y.der.length;
  });
  return encoded.map((e) => e.a);
}

function timeValue(d: Date): asn1js.UTCTime | asn1js.GeneralizedTime {
  // RFC 5652 §11.3: UTCTime for 1950–2049, GeneralizedTime otherwise.
  const year = d.getUTCFullYear();
  return year >= 1950 && year < 2050
    ? new asn1js.UTCTime({ valueDate: d })
    : new asn1js.GeneralizedTime({ valueDate: d });
}

/**
 * One SignerInfo as `encodeSignedData` should produce it. The knobs exist so
 * tests can build hostile signatures (weak digest, no signingTime, wrong
 * messageDigest); production signing goes through `signDetached` only.
 */
export interface SignerSpec {
  signerCert: Uint8Array;
  privateKey: CryptoKey;
  hash?: Hash;
  /** null leaves the signingTime attribute out. */
  signingTime?: Date | null;
  /** Overrides the computed content digest. */
  messageDigest?: Uint8Array;
}

/** @internal Low-level encoder behind `signDetached`; exposed for testing.ts. */
export async function encodeSignedData(
  content: Uint8Array,
  opts: { signers: SignerSpec[]; certificates: Uint8Array[] },
): Promise<Uint8Array> {
  const hashes = new Set<Hash>();
  const signerInfos: pkijs.SignerInfo[] = [];
  for (const s of opts.signers) {
    const hash = s.hash ?? "SHA-384";
    hashes.add(hash);
    const cert = pkijs.Certificate.fromBER(s.signerCert);
    const attributes = [
      new pkijs.Attribute({
        type: OID.contentType,
        values: [new asn1js.ObjectIdentifier({ value: OID.data })],
      }),
      new pkijs.Attribute({
        type: OID.messageDigest,
        values: [new asn1js.OctetString({ valueHex: s.messageDigest ?? digestWith(hash, content) })],
      }),
    ];
    const signingTime = s.signingTime === undefined ? new Date() : s.signingTime;
    if (signingTime)
      attributes.push(new pkijs.Attribute({ type: OID.signingTime, values: [timeValue(signingTime)] }));
    const signedAttrs = new pkijs.SignedAndUnsignedAttributes({
      type: 0,
      attributes: sortForDerSet(attributes),
    });
    // RFC 5652 §5.4: the signature covers the attributes re-tagged as a SET OF.
    const toSign = derBytes(signedAttrs.toSchema());
    toSign[0] = 0x31;
    const raw = new Uint8Array(
      await crypto.subtle.sign({ name: "ECDSA", hash }, s.privateKey, toSign as Uint8Array<ArrayBuffer>),
    );
    signerInfos.push(
      new pkijs.SignerInfo({
        version: 1,
        sid: new pkijs.IssuerAndSerialNumber({ issuer: cert.issuer, serialNumber: cert.serialNumber }),
        digestAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: HASH_OIDS[hash].digest }),
        signedAttrs,
        signatureAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: HASH_OIDS[hash].signature }),
        signature: new asn1js.OctetString({ valueHex: ecdsaRawToDer(raw) }),
      }),
    );
  }
  const signedData = new pkijs.SignedData({
    version: 1,
    digestAlgorithms: [...hashes].map(
      (h) => new pkijs.AlgorithmIdentifier({ algorithmId: HASH_OIDS[h].digest }),
    ),
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: OID.data }),
    certificates: opts.certificates.map((der) => pkijs.Certificate.fromBER(der)),
    signerInfos,
  });
  const contentInfo = new pkijs.ContentInfo({
    contentType: OID.signedData,
    content: signedData.toSchema(true),
  });
  return derBytes(contentInfo.toSchema());
}

/**
 * Signs `content` as a detached CMS SignedData: SHA-384 / ecdsa-with-SHA384,
 * signed attributes contentType, messageDigest and signingTime, embedding the
 * signer and intermediate certificates (never the root: agents pin it).
 */
export async function signDetached(
  content: Uint8Array,
  keys: SigningKeys,
  opts: { signingTime?: Date } = {},
): Promise<Uint8Array> {
  return encodeSignedData(content, {
    signers: [
      {
        signerCert: keys.signerCert,
        privateKey: keys.privateKey,
        hash: "SHA-384",
        signingTime: opts.signingTime ?? new Date(),
      },
    ],
    certificates: [keys.signerCert, ...keys.chain],
  });
}

// ---------------------------------------------------------------------------
// Trust store

/** The pinned roots content must chain to: one PEM bundle with one or more certificates. */
export class TrustStore {
  private constructor(
    readonly roots: readonly x509.X509Certificate[],
    readonly source: string,
    /** Only set by `withVerificationMemo()`. */
    readonly memo?: VerificationMemo,
  ) {}

  /**
   * The same roots, remembering successful verifications of identical
   * (content, signature) pairs. For simulations that run thousands of agents
   * in one process over the same few files (bench/fleet, test/fleet.test.ts),
   * where a full verification (~50 ms, mostly ASN.1 parsing) per agent would
   * dominate. Every check in `verifyDetached` depends only on the bytes, the
   * roots and the required EKU, except the clock: a hit re-checks the path's
   * validity window and the signingTime skew against `now` and falls back to
   * a full verification when either fails. Agents do not use it.
   */
  withVerificationMemo(): TrustStore {
    return new TrustStore(this.roots, this.source, new Map());
  }

  static fromPem(pem: string, source = "<trust store>"): TrustStore {
    let blocks: { type: string; rawData: ArrayBuffer }[];
    try {
      blocks = x509.PemConverter.decodeWithHeaders(pem);
    } catch (e) {
      throw new ConfigError("CFG_TRUST_STORE", `${source}: not a PEM certificate bundle`, {
        file: source,
        cause: e,
      });
    }
    if (blocks.length === 0) {
      throw new ConfigError("CFG_TRUST_STORE", `${source}: holds no certificates`, { file: source });
    }
    const roots = blocks.map((b, i) => {
      // A private key pasted into a trust bundle is an operator mistake worth stopping on.
      if (b.type !== "CERTIFICATE") {
        throw new ConfigError("CFG_TRUST_STORE", `${source}: block ${i + 1} is ${b.type}, not CERTIFICATE`, {
          file: source,
        });
      }
      try {
        return new x509.X509Certificate(b.rawData);
      } catch (e) {
        throw new ConfigError("CFG_TRUST_STORE", `${source}: certificate ${i + 1} does not parse`, {
          file: source,
          cause: e,
        });
      }
    });
    return new TrustStore(roots, source);
  }

  static async load(path: string): Promise<TrustStore> {
    let pem: string;
    try {
      pem = await readFile(path, "utf8");
    } catch (e) {
      throw new ConfigError("CFG_TRUST_STORE", `cannot read trust store ${path}: ${(e as Error).message}`, {
        file: path,
        cause: e,
      });
    }
    return TrustStore.fromPem(pem, path);
  }

  /** SHA-256 fingerprints (hex) of the roots, for status output and logs. */
  fingerprints(): string[] {
    return this.roots.map((r) => sha256Hex(new Uint8Array(r.rawData)));
  }
}

// ---------------------------------------------------------------------------
// Verification

interface MemoEntry {
  result: VerifiedSignature;
  /** The latest notBefore and earliest notAfter on the verified path. */
  validFrom: number;
  validUntil: number;
}
type VerificationMemo = Map<string, MemoEntry>;
const MEMO_MAX_ENTRIES = 4096;

export interface VerifiedSignature {
  signingTime: Date;
  signerSubject: string;
  /** SHA-256 (hex) of the signer certificate DER. */
  signerSha256: string;
}

export interface VerifyOptions {
  now: Date;
  file: string;
  /** EKU the signer must carry; default code signing (1.3.6.1.5.5.7.3.3). */
  requiredEku?: string;
}

interface Cert {
  x: x509.X509Certificate;
  der: Uint8Array;
}

function certSummary(c: Cert): ErrorDetails {
  return {
    subject: c.x.subject,
    notBefore: c.x.notBefore.toISOString(),
    notAfter: c.x.notAfter.toISOString(),
  };
}

function attributeTime(value: unknown): Date | null {
  if (value instanceof asn1js.UTCTime || value instanceof asn1js.GeneralizedTime) {
    const d = value.toDate();
    return Number.isNaN(d.getTime()) ? null : d;
  }
  return null;
}

function sameName(a: x509.Name, b: x509.Name): boolean {
  return bytesEqual(new Uint8Array(a.toArrayBuffer()), new Uint8Array(b.toArrayBuffer()));
}

function curveOf(c: Cert): string | undefined {
  return (c.x.publicKey.algorithm as { namedCurve?: string }).namedCurve;
}

/**
 * Verifies a detached CMS signature over `content` and the signer's chain to
 * a root in `trust`, at time `opts.now`. Cheap structural and cryptographic
 * checks run first; hashing the (possibly large) content runs last.
 */
export async function verifyDetached(
  content: Uint8Array,
  p7s: Uint8Array,
  trust: TrustStore,
  opts: VerifyOptions,
): Promise<VerifiedSignature> {
  const { now, file } = opts;
  const requiredEku = opts.requiredEku ?? CODE_SIGNING_EKU;
  const memoKey = trust.memo ? `${requiredEku}:${sha384Hex(p7s)}:${sha384Hex(content)}` : undefined;
  const hit = memoKey === undefined ? undefined : trust.memo?.get(memoKey);
  if (
    hit &&
    now.getTime() >= hit.validFrom &&
    now.getTime() <= hit.validUntil &&
    hit.result.signingTime.getTime() <= now.getTime() + MAX_CLOCK_SKEW_MS
  ) {
    return { ...hit.result, signingTime: new Date(hit.result.signingTime) };
  }
  const reject = (code: string, reason: string, details?: ErrorDetails) =>
    new SignatureError(code, `${file}: signature rejected: ${reason}`, { file, details });

  // Rule (RFC 5652 §3, §5.1): the signature is a DER ContentInfo wrapping
  // SignedData, with nothing after it.
  let signedData: pkijs.SignedData;
  try {
    const parsed = asn1js.fromBER(p7s, { maxDepth: 32, maxNodes: 4096 });
    if (parsed.offset === -1) throw new Error(parsed.result.error || "not BER");
    if (parsed.offset !== p7s.byteLength) throw new Error("trailing data after ContentInfo");
    const contentInfo = new pkijs.ContentInfo({ schema: parsed.result });
    if (contentInfo.contentType !== OID.signedData)
      throw new Error(`content type ${contentInfo.contentType}`);
    signedData = new pkijs.SignedData({ schema: contentInfo.content });
  } catch (e) {
    throw reject("SIG_MALFORMED", `not a CMS SignedData (${(e as Error).message})`);
  }

  // Rule: the signature is detached over id-data; embedded content would be
  // content nobody checks.
  if (signedData.encapContentInfo.eContent)
    throw reject("SIG_MALFORMED", "signature embeds content; detached required");
  if (signedData.encapContentInfo.eContentType !== OID.data) {
    throw reject(
      "SIG_MALFORMED",
      `encapsulated content type ${signedData.encapContentInfo.eContentType}, want id-data`,
    );
  }

  // Rule: exactly one signer. A second SignerInfo is either noise or an
  // attempt to have a weaker signature accepted in its place.
  if (signedData.signerInfos.length !== 1) {
    throw reject("SIG_NO_SIGNER", `${signedData.signerInfos.length} signers, exactly 1 required`);
  }
  const signerInfo = signedData.signerInfos[0]!;

  // Rule: SHA-384 digest and ecdsa-with-SHA384 signature only (no downgrade).
  if (signerInfo.digestAlgorithm.algorithmId !== OID.sha384) {
    throw reject(
      "SIG_WEAK_ALGORITHM",
      `digest algorithm ${oidName(signerInfo.digestAlgorithm.algorithmId)}, SHA-384 required`,
    );
  }
  if (signerInfo.signatureAlgorithm.algorithmId !== OID.ecdsaWithSha384) {
    throw reject(
      "SIG_WEAK_ALGORITHM",
      `signature algorithm ${oidName(signerInfo.signatureAlgorithm.algorithmId)}, ecdsa-with-SHA384 required`,
    );
  }

  // Rule (RFC 5652 §5.3, §11): signed attributes are present, each of
  // contentType, messageDigest and signingTime at most once with one value;
  // contentType matches the encapsulated type; signingTime is required so
  // every signature carries a claim about when it was made.
  const signedAttrs = signerInfo.signedAttrs;
  if (!signedAttrs) throw reject("SIG_NO_SIGNING_TIME", "no signed attributes, so no signingTime");
  const attrs = new Map<string, unknown>();
  for (const a of signedAttrs.attributes) {
    if (attrs.has(a.type)) throw reject("SIG_MALFORMED", `signed attribute ${a.type} appears twice`);
    if (
      [OID.contentType, OID.messageDigest, OID.signingTime].includes(a.type as never) &&
      a.values.length !== 1
    ) {
      throw reject("SIG_MALFORMED", `signed attribute ${a.type} must have exactly one value`);
    }
    attrs.set(a.type, a.values[0]);
  }
  const contentType = attrs.get(OID.contentType);
  if (!(contentType instanceof asn1js.ObjectIdentifier) || contentType.getValue() !== OID.data) {
    throw reject("SIG_MALFORMED", "contentType signed attribute missing or not id-data");
  }
  const messageDigest = attrs.get(OID.messageDigest);
  if (!(messageDigest instanceof asn1js.OctetString)) {
    throw reject("SIG_MALFORMED", "messageDigest signed attribute missing");
  }
  if (!attrs.has(OID.signingTime))
    throw reject("SIG_NO_SIGNING_TIME", "signingTime signed attribute missing");
  const signingTime = attributeTime(attrs.get(OID.signingTime));
  if (!signingTime) throw reject("SIG_MALFORMED", "signingTime is not a valid time");

  // Rule: the signer's certificate is embedded and matches the SignerInfo's
  // identifier (issuer+serial or subject key identifier).
  const embedded = (signedData.certificates ?? []).filter((c) => c instanceof pkijs.Certificate);
  if (embedded.length > MAX_EMBEDDED_CERTS) {
    throw reject("SIG_MALFORMED", `${embedded.length} embedded certificates, at most ${MAX_EMBEDDED_CERTS}`);
  }
  const pool: Cert[] = [];
  let signer: Cert | undefined;
  for (const c of embedded) {
    let cert: Cert;
    try {
      const der = derBytes(c.toSchema());
      cert = { x: new x509.X509Certificate(der), der };
    } catch (e) {
      throw reject("SIG_MALFORMED", `embedded certificate does not parse (${(e as Error).message})`);
    }
    pool.push(cert);
    if (!signer && matchesSid(signerInfo.sid, c)) signer = cert;
  }
  if (!signer) throw reject("SIG_NO_SIGNER", "signer certificate not embedded");

  // Rule: the signer key is EC P-384, matching the required algorithm.
  const signerCurve = curveOf(signer);
  if (signerCurve !== SIGNER_CURVE) {
    throw reject("SIG_WEAK_ALGORITHM", `signer key is ${signerCurve ?? "not EC"}, ${SIGNER_CURVE} required`);
  }

  // Rule (RFC 5652 §5.4): the signature verifies, with the signer's key,
  // over the DER signed attributes (which bind content digest and time).
  const rawSignature = ecdsaDerToRaw(
    signerInfo.signature.valueBlock.valueHexView,
    CURVE_BYTES[SIGNER_CURVE]!,
  );
  let signatureOk = false;
  if (rawSignature) {
    const key = await signer.x.publicKey.export({ name: "ECDSA", namedCurve: SIGNER_CURVE }, ["verify"]);
    signatureOk = await crypto.subtle.verify(
      { name: "ECDSA", hash: "SHA-384" },
      key,
      rawSignature as Uint8Array<ArrayBuffer>,
      signedAttrs.encodedValue,
    );
  }
  if (!signatureOk)
    throw reject("SIG_BAD_SIGNATURE", "signature does not verify with the signer certificate");

  // Rule: the signer chains, through embedded certificates only, to a root
  // in the trust store; each link's signature verifies under its issuer.
  const path = await buildPath(signer, pool, trust, reject);
  if (!path) {
    throw reject("SIG_UNTRUSTED_CHAIN", `no chain from "${signer.x.subject}" to a trusted root`, {
      issuer: signer.x.issuer,
      trustStore: trust.source,
    });
  }

  // Rule (RFC 5280 §6.1.3): every certificate on the path, the root
  // included, is valid at `now` (the agent's clock, not the signer's claim).
  for (const c of path) {
    if (now < c.x.notBefore) {
      throw reject(
        "SIG_CERT_NOT_YET_VALID",
        `certificate "${c.x.subject}" is not valid until ${c.x.notBefore.toISOString()}`,
        certSummary(c),
      );
    }
    if (now > c.x.notAfter) {
      throw reject(
        "SIG_CERT_EXPIRED",
        `certificate "${c.x.subject}" expired ${c.x.notAfter.toISOString()}`,
        certSummary(c),
      );
    }
  }

  // Rule (RFC 5280 §4.2): a certificate with a critical extension we do not
  // process must not be relied upon.
  for (const c of path) {
    for (const ext of c.x.extensions) {
      if (ext.critical && !UNDERSTOOD_EXTENSIONS.has(ext.type)) {
        throw reject(
          "SIG_UNKNOWN_CRITICAL_EXTENSION",
          `certificate "${c.x.subject}" has critical extension ${ext.type}`,
        );
      }
    }
  }

  // Rule (RFC 5280 §4.2.1.9, §4.2.1.3, §6.1.4): every issuer on the path is a
  // CA (basicConstraints cA=TRUE), may sign certificates (keyUsage
  // keyCertSign when present) and respects its pathLenConstraint.
  for (let i = 1; i < path.length; i++) {
    const issuer = path[i]!;
    const bc = issuer.x.getExtension(x509.BasicConstraintsExtension);
    if (!bc?.ca) throw reject("SIG_NOT_CA", `issuer "${issuer.x.subject}" is not a CA certificate`);
    const ku = issuer.x.getExtension(x509.KeyUsagesExtension);
    if (ku && !(ku.usages & x509.KeyUsageFlags.keyCertSign)) {
      throw reject("SIG_NOT_CA", `issuer "${issuer.x.subject}" lacks keyUsage keyCertSign`);
    }
    const casBelow = i - 1; // intermediates between this issuer and the signer
    if (bc.pathLength !== undefined && casBelow > bc.pathLength) {
      throw reject("SIG_NOT_CA", `issuer "${issuer.x.subject}" pathLenConstraint ${bc.pathLength} exceeded`);
    }
  }

  // Rule: the signer is an end entity authorised for content signing:
  // not a CA, keyUsage digitalSignature when present, and the required EKU.
  if (signer.x.getExtension(x509.BasicConstraintsExtension)?.ca) {
    throw reject("SIG_BAD_KEY_USAGE", `signer "${signer.x.subject}" is a CA certificate`);
  }
  const signerKu = signer.x.getExtension(x509.KeyUsagesExtension);
  if (signerKu && !(signerKu.usages & x509.KeyUsageFlags.digitalSignature)) {
    throw reject("SIG_BAD_KEY_USAGE", `signer "${signer.x.subject}" lacks keyUsage digitalSignature`);
  }
  const eku = signer.x.getExtension(x509.ExtendedKeyUsageExtension);
  if (!eku?.usages.some((u) => u === requiredEku)) {
    throw reject("SIG_MISSING_EKU", `signer "${signer.x.subject}" lacks extended key usage ${requiredEku}`);
  }

  // Rule: signingTime is not in the future (beyond clock skew): a signer
  // cannot pre-date content to outlive its own certificate.
  if (signingTime.getTime() > now.getTime() + MAX_CLOCK_SKEW_MS) {
    throw reject(
      "SIG_SIGNING_TIME_IN_FUTURE",
      `signingTime ${signingTime.toISOString()} is after ${now.toISOString()}`,
    );
  }
  // Rule: the signature was made while the signer certificate was valid.
  if (signingTime < signer.x.notBefore || signingTime > signer.x.notAfter) {
    throw reject(
      "SIG_SIGNING_TIME_OUTSIDE_VALIDITY",
      `signingTime ${signingTime.toISOString()} is outside the signer certificate validity`,
      certSummary(signer),
    );
  }

  // Rule (RFC 5652 §11.2): messageDigest equals the SHA-384 of the content.
  const actual = new Uint8Array(Bun.CryptoHasher.hash("sha384", content));
  if (!bytesEqual(actual, messageDigest.valueBlock.valueHexView)) {
    throw reject("SIG_DIGEST_MISMATCH", "content SHA-384 differs from the signed messageDigest");
  }

  const result = { signingTime, signerSubject: signer.x.subject, signerSha256: sha256Hex(signer.der) };
  if (memoKey !== undefined && trust.memo) {
    if (trust.memo.size >= MEMO_MAX_ENTRIES) trust.memo.clear();
    trust.memo.set(memoKey, {
      result: { ...result, signingTime: new Date(signingTime) },
      validFrom: Math.max(...path.map((c) => c.x.notBefore.getTime())),
      validUntil: Math.min(...path.map((c) => c.x.notAfter.getTime())),
    });
  }
  return result;
}

function matchesSid(sid: unknown, cert: pkijs.Certificate): boolean {
  if (sid instanceof pkijs.IssuerAndSerialNumber) {
    return sid.issuer.isEqual(cert.issuer) && sid.serialNumber.isEqual(cert.serialNumber);
  }
  // [0] SubjectKeyIdentifier
  if (sid instanceof asn1js.Primitive || sid instanceof asn1js.Constructed) {
    const ski = cert.extensions?.find((e) => e.extnID === OID.subjectKeyIdentifier)?.parsedValue;
    const want = sid instanceof asn1js.Primitive ? sid.valueBlock.valueHexView : null;
    return (
      !!ski && !!want && ski instanceof asn1js.OctetString && bytesEqual(ski.valueBlock.valueHexView, want)
    );
  }
  return false;
}

/**
 * Depth-first path building from the signer up, by issuer name and issuer
 * signature, to a trust-store root. Only names and signatures decide the
 * path; the policy checks above then judge it.
 */
async function buildPath(
  signer: Cert,
  pool: Cert[],
  trust: TrustStore,
  reject: (code: string, reason: string) => SignatureError,
): Promise<Cert[] | null> {
  const roots: Cert[] = trust.roots.map((x) => ({ x, der: new Uint8Array(x.rawData) }));

  // A candidate that did issue a link but with a weak key or hash is not a path; it is only the
  // answer when no other candidate completes one (a genuinely weak chain).
  let weakLink: string | undefined;
  const signedBy = async (child: Cert, issuer: Cert): Promise<boolean> => {
    const link = await issuedBy(child, issuer);
    if (link.weak) weakLink ??= link.weak;
    return link.issued;
  };

  const extend = async (path: Cert[]): Promise<Cert[] | null> => {
    const tail = path[path.length - 1]!;
    for (const root of roots) if (await signedBy(tail, root)) return [...path, root];
    if (path.length + 1 >= MAX_PATH_LENGTH) return null;
    for (const candidate of pool) {
      if (path.some((p) => bytesEqual(p.der, candidate.der))) continue;
      if (await signedBy(tail, candidate)) {
        const found = await extend([...path, candidate]);
        if (found) return found;
      }
    }
    return null;
  };
  const path = await extend([signer]);
  if (!path && weakLink) throw reject("SIG_WEAK_ALGORITHM", weakLink);
  return path;
}

/**
 * Whether `issuer` issued `child`: same name and a signature that verifies.
 * Judged per candidate and never thrown, so that a certificate anyone can
 * add to the CMS certificate set (it is outside the signature) — say a weak
 * self-signed one named like the intermediate — is skipped rather than
 * failing the whole verification. A real link made with a weak algorithm
 * is issued: false with the reason in `weak`.
 * Rule: certificates are signed with ECDSA SHA-384/512 by a P-384/P-521 key.
 */
async function issuedBy(child: Cert, issuer: Cert): Promise<{ issued: boolean; weak?: string }> {
  if (!sameName(child.x.issuerName, issuer.x.subjectName)) return { issued: false };
  let verified: boolean;
  try {
    verified = await child.x.verify({ publicKey: issuer.x.publicKey, signatureOnly: true });
  } catch {
    verified = false;
  }
  if (!verified) return { issued: false };
  const alg = child.x.signatureAlgorithm as { name: string; hash?: { name: string } };
  if (alg.name !== "ECDSA" || !STRONG_CERT_HASHES.has(alg.hash?.name ?? "")) {
    return {
      issued: false,
      weak: `certificate "${child.x.subject}" is signed with ${alg.hash?.name ?? alg.name}`,
    };
  }
  if (!STRONG_CURVES.has(curveOf(issuer) ?? "")) {
    return { issued: false, weak: `issuer "${issuer.x.subject}" key is ${curveOf(issuer) ?? "not EC"}` };
  }
  return { issued: true };
}
