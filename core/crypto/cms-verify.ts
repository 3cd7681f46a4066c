/**
 * Verification of a detached CMS SignedData (RFC 5652) over content and the
 * signer's chain to a pinned root — the agent's side. Pure of I/O, written
 * out check by check (python-tuf style, like core/update/trusted-state.ts):
 * each step names the rule it enforces and fails with its own SIG_* code.
 * Cheap structural and cryptographic checks run first; hashing the (possibly
 * large) content runs last.
 *
 *   C1  a DER ContentInfo wrapping SignedData, nothing after it (RFC 5652 §3, §5.1)
 *   C2  detached over id-data: no embedded content nobody checks
 *   C3  exactly one SignerInfo (a second is noise or a weaker signature in waiting)
 *   C4  SHA-384 digest and ecdsa-with-SHA384 signature only (no downgrade)
 *   C5  signed attributes contentType, messageDigest, signingTime, once each (§5.3, §11)
 *   C6  the signer certificate is embedded and matches the SignerInfo's identifier
 *   C7  the signer key is EC P-384
 *   C8  the signature verifies over the DER signed attributes (§5.4)
 *   C9  the signer chains through embedded certificates to a trusted root, each link
 *       signed with ECDSA SHA-384/512 by a P-384/P-521 key
 *   C10 every certificate on the path is valid now (RFC 5280 §6.1.3)
 *   C11 no critical extension we do not process (RFC 5280 §4.2)
 *   C12 every issuer is a CA, may sign certificates, respects pathLenConstraint
 *   C13 the signer is an end entity with digitalSignature and the required EKU
 *   C14 signingTime is not in the future (beyond clock skew)
 *   C15 signingTime is within the signer certificate's validity
 *   C16 messageDigest equals the SHA-384 of the content (§11.2)
 */
import * as asn1js from "asn1js";
import { type ErrorDetails, SignatureError } from "../errors.ts";
import {
  CURVE_BYTES,
  derBytes,
  ecdsaDerToRaw,
  MAX_CLOCK_SKEW_MS,
  MAX_EMBEDDED_CERTS,
  MAX_PATH_LENGTH,
  OID,
  oidName,
  SIGNER_CURVE,
  STRONG_CERT_HASHES,
  STRONG_CURVES,
  type TrustStore,
  UNDERSTOOD_EXTENSIONS,
  type VerifiedSignature,
} from "./cms.ts";
import { bytesEqual, sha256Hex, sha384Hex } from "./digest.ts";
import { pkijs, x509 } from "./engine.ts";
import { CODE_SIGNING_EKU } from "./keys.ts";

const MEMO_MAX_ENTRIES = 4096;

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

/** Builds the error a failed check throws: names the file, the rule's code and the reason. */
type Reject = (code: string, reason: string, details?: ErrorDetails) => SignatureError;

interface SignedAttributes {
  signingTime: Date;
  messageDigest: asn1js.OctetString;
  /** The DER the signature covers. */
  encoded: ArrayBuffer;
}

/**
 * Verifies a detached CMS signature over `content` and the signer's chain to
 * a root in `trust`, at time `opts.now`.
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
  const remembered = memoKey === undefined ? undefined : rememberedResult(trust, memoKey, now);
  if (remembered) return remembered;
  const reject: Reject = (code, reason, details) =>
    new SignatureError(code, `${file}: signature rejected: ${reason}`, { file, details });

  const signedData = parseSignedData(p7s, reject); // C1
  checkDetached(signedData, reject); // C2
  const signerInfo = singleSigner(signedData, reject); // C3
  checkAlgorithms(signerInfo, reject); // C4
  const attrs = signedAttributes(signerInfo, reject); // C5
  const { signer, pool } = embeddedSigner(signedData, signerInfo, reject); // C6
  checkSignerKey(signer, reject); // C7
  await checkSignature(signer, signerInfo, attrs, reject); // C8
  const path = await trustedPath(signer, pool, trust, reject); // C9
  checkValidAt(path, now, reject); // C10
  checkCriticalExtensions(path, reject); // C11
  checkIssuers(path, reject); // C12
  checkSignerUsage(signer, requiredEku, reject); // C13
  checkSigningTime(attrs.signingTime, signer, now, reject); // C14, C15
  checkContentDigest(content, attrs.messageDigest, reject); // C16

  const result = {
    signingTime: attrs.signingTime,
    signerSubject: signer.x.subject,
    signerSha256: sha256Hex(signer.der),
  };
  if (memoKey !== undefined) remember(trust, memoKey, result, path);
  return result;
}

// ---------------------------------------------------------------------------
// The checks, in the order verifyDetached runs them

/** C1: a DER ContentInfo wrapping SignedData, with nothing after it. */
function parseSignedData(p7s: Uint8Array, reject: Reject): pkijs.SignedData {
  try {
    const parsed = asn1js.fromBER(p7s, { maxDepth: 32, maxNodes: 4096 });
    if (parsed.offset === -1) throw new Error(parsed.result.error || "not BER");
    if (parsed.offset !== p7s.byteLength) throw new Error("trailing data after ContentInfo");
    const contentInfo = new pkijs.ContentInfo({ schema: parsed.result });
    if (contentInfo.contentType !== OID.signedData)
      throw new Error(`content type ${contentInfo.contentType}`);
    return new pkijs.SignedData({ schema: contentInfo.content });
  } catch (e) {
    throw reject("SIG_MALFORMED", `not a CMS SignedData (${(e as Error).message})`);
  }
}

/** C2: detached over id-data; embedded content would be content nobody checks. */
function checkDetached(signedData: pkijs.SignedData, reject: Reject): void {
  if (signedData.encapContentInfo.eContent)
    throw reject("SIG_MALFORMED", "signature embeds content; detached required");
  if (signedData.encapContentInfo.eContentType !== OID.data) {
    throw reject(
      "SIG_MALFORMED",
      `encapsulated content type ${signedData.encapContentInfo.eContentType}, want id-data`,
    );
  }
}

/** C3: exactly one signer. A second SignerInfo is noise or a weaker signature accepted in its place. */
function singleSigner(signedData: pkijs.SignedData, reject: Reject): pkijs.SignerInfo {
  if (signedData.signerInfos.length !== 1) {
    throw reject("SIG_NO_SIGNER", `${signedData.signerInfos.length} signers, exactly 1 required`);
  }
  return signedData.signerInfos[0]!;
}

/** C4: SHA-384 digest and ecdsa-with-SHA384 signature only (no downgrade). */
function checkAlgorithms(signerInfo: pkijs.SignerInfo, reject: Reject): void {
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
}

/**
 * C5 (RFC 5652 §5.3, §11): signed attributes are present, each of
 * contentType, messageDigest and signingTime at most once with one value;
 * contentType matches the encapsulated type; signingTime is required so
 * every signature carries a claim about when it was made.
 */
function signedAttributes(signerInfo: pkijs.SignerInfo, reject: Reject): SignedAttributes {
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
  return { signingTime, messageDigest, encoded: signedAttrs.encodedValue };
}

/**
 * C6: the signer's certificate is embedded and matches the SignerInfo's
 * identifier (issuer+serial or subject key identifier); at most
 * MAX_EMBEDDED_CERTS certificates, each of which parses.
 */
function embeddedSigner(
  signedData: pkijs.SignedData,
  signerInfo: pkijs.SignerInfo,
  reject: Reject,
): { signer: Cert; pool: Cert[] } {
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
  return { signer, pool };
}

/** C7: the signer key is EC P-384, matching the required algorithm. */
function checkSignerKey(signer: Cert, reject: Reject): void {
  const signerCurve = curveOf(signer);
  if (signerCurve !== SIGNER_CURVE) {
    throw reject("SIG_WEAK_ALGORITHM", `signer key is ${signerCurve ?? "not EC"}, ${SIGNER_CURVE} required`);
  }
}

/** C8 (RFC 5652 §5.4): the signature verifies, with the signer's key, over the DER signed attributes. */
async function checkSignature(
  signer: Cert,
  signerInfo: pkijs.SignerInfo,
  attrs: SignedAttributes,
  reject: Reject,
): Promise<void> {
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
      attrs.encoded,
    );
  }
  if (!signatureOk)
    throw reject("SIG_BAD_SIGNATURE", "signature does not verify with the signer certificate");
}

/** C9: the signer chains, through embedded certificates only, to a root in the trust store. */
async function trustedPath(signer: Cert, pool: Cert[], trust: TrustStore, reject: Reject): Promise<Cert[]> {
  const path = await buildPath(signer, pool, trust, reject);
  if (!path) {
    throw reject("SIG_UNTRUSTED_CHAIN", `no chain from "${signer.x.subject}" to a trusted root`, {
      issuer: signer.x.issuer,
      trustStore: trust.source,
    });
  }
  return path;
}

/** C10 (RFC 5280 §6.1.3): every certificate on the path, the root included, is valid at `now` (the agent's clock). */
function checkValidAt(path: Cert[], now: Date, reject: Reject): void {
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
}

/** C11 (RFC 5280 §4.2): a certificate with a critical extension we do not process must not be relied upon. */
function checkCriticalExtensions(path: Cert[], reject: Reject): void {
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
}

/**
 * C12 (RFC 5280 §4.2.1.9, §4.2.1.3, §6.1.4): every issuer on the path is a
 * CA (basicConstraints cA=TRUE), may sign certificates (keyUsage
 * keyCertSign when present) and respects its pathLenConstraint.
 */
function checkIssuers(path: Cert[], reject: Reject): void {
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
}

/** C13: the signer is an end entity authorised for content signing: not a CA, digitalSignature, the required EKU. */
function checkSignerUsage(signer: Cert, requiredEku: string, reject: Reject): void {
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
}

/**
 * C14: signingTime is not in the future (beyond clock skew): a signer cannot
 * pre-date content to outlive its own certificate. C15: the signature was
 * made while the signer certificate was valid.
 */
function checkSigningTime(signingTime: Date, signer: Cert, now: Date, reject: Reject): void {
  if (signingTime.getTime() > now.getTime() + MAX_CLOCK_SKEW_MS) {
    throw reject(
      "SIG_SIGNING_TIME_IN_FUTURE",
      `signingTime ${signingTime.toISOString()} is after ${now.toISOString()}`,
    );
  }
  if (signingTime < signer.x.notBefore || signingTime > signer.x.notAfter) {
    throw reject(
      "SIG_SIGNING_TIME_OUTSIDE_VALIDITY",
      `signingTime ${signingTime.toISOString()} is outside the signer certificate validity`,
      certSummary(signer),
    );
  }
}

/** C16 (RFC 5652 §11.2): messageDigest equals the SHA-384 of the content. Last: it reads every byte. */
function checkContentDigest(content: Uint8Array, messageDigest: asn1js.OctetString, reject: Reject): void {
  const actual = new Uint8Array(Bun.CryptoHasher.hash("sha384", content));
  if (!bytesEqual(actual, messageDigest.valueBlock.valueHexView)) {
    throw reject("SIG_DIGEST_MISMATCH", "content SHA-384 differs from the signed messageDigest");
  }
}

// ---------------------------------------------------------------------------
// Verification memo (TrustStore.withVerificationMemo; simulations only)

/** A remembered result, if the path is still valid and the signingTime still not in the future at `now`. */
function rememberedResult(trust: TrustStore, key: string, now: Date): VerifiedSignature | undefined {
  const hit = trust.memo?.get(key);
  if (
    hit &&
    now.getTime() >= hit.validFrom &&
    now.getTime() <= hit.validUntil &&
    hit.result.signingTime.getTime() <= now.getTime() + MAX_CLOCK_SKEW_MS
  ) {
    return { ...hit.result, signingTime: new Date(hit.result.signingTime) };
  }
  return undefined;
}

function remember(trust: TrustStore, key: string, result: VerifiedSignature, path: Cert[]): void {
  if (!trust.memo) return;
  if (trust.memo.size >= MEMO_MAX_ENTRIES) trust.memo.clear();
  trust.memo.set(key, {
    result: { ...result, signingTime: new Date(result.signingTime) },
    validFrom: Math.max(...path.map((c) => c.x.notBefore.getTime())),
    validUntil: Math.min(...path.map((c) => c.x.notAfter.getTime())),
  });
}

// ---------------------------------------------------------------------------
// Helpers

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
 * path (C9, with the algorithm rule on each link); C10–C13 then judge it.
 */
async function buildPath(
  signer: Cert,
  pool: Cert[],
  trust: TrustStore,
  reject: Reject,
): Promise<Cert[] | null> {
  const roots: Cert[] = trust.roots.map((x) => ({ x, der: new Uint8Array(x.rawData) }));

  const signedBy = async (child: Cert, issuer: Cert): Promise<boolean> => {
    if (!sameName(child.x.issuerName, issuer.x.subjectName)) return false;
    // C9: certificates are signed with ECDSA SHA-384/512 by a P-384/P-521 key.
    const alg = child.x.signatureAlgorithm as { name: string; hash?: { name: string } };
    if (alg.name !== "ECDSA" || !STRONG_CERT_HASHES.has(alg.hash?.name ?? "")) {
      throw reject(
        "SIG_WEAK_ALGORITHM",
        `certificate "${child.x.subject}" is signed with ${alg.hash?.name ?? alg.name}`,
      );
    }
    if (!STRONG_CURVES.has(curveOf(issuer) ?? "")) {
      throw reject(
        "SIG_WEAK_ALGORITHM",
        `issuer "${issuer.x.subject}" key is ${curveOf(issuer) ?? "not EC"}`,
      );
    }
    try {
      return await child.x.verify({ publicKey: issuer.x.publicKey, signatureOnly: true });
    } catch {
      return false;
    }
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
  return extend([signer]);
}
