/**
 * Signing side of detached CMS SignedData (RFC 5652), used by contentctl:
 * SHA-384 / ecdsa-with-SHA384 over the signed attributes contentType,
 * messageDigest and signingTime. What the agent accepts is in cms-verify.ts.
 */
import * as asn1js from "asn1js";
import { derBytes, ecdsaRawToDer, HASH_OIDS, OID } from "./cms.ts";
import { pkijs } from "./engine.ts";
import type { Hash, SigningKeys } from "./keys.ts";

function digestWith(hash: Hash, content: Uint8Array): Uint8Array {
  return new Uint8Array(Bun.CryptoHasher.hash(HASH_OIDS[hash].bun, content));
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
