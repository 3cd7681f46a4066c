/**
 * Authenticode: who signed a PE file, and whether the signature holds.
 * Runs in the scanner (untrusted input is parsed in the low-privilege
 * process). Checks, in order:
 *   A1  the certificate table holds one WIN_CERTIFICATE of type PKCS#7 SignedData;
 *   A2  its content is SpcIndirectDataContent with a DigestInfo;
 *   A3  the DigestInfo digest equals the Authenticode hash of the file
 *       (everything up to the certificate table, minus the CheckSum field and
 *       the security directory entry) — so the file is what was signed;
 *   A4  the messageDigest signed attribute equals the hash of the
 *       SpcIndirectDataContent contents — so the signed attributes cover A3;
 *   A5  the SignerInfo signature verifies with the embedded signer certificate.
 * There is no Windows root store on a Linux host, so the chain is not built:
 * the signer is identified by the SHA-256 of its certificate, and whether
 * that certificate deserves reputation is LocalRepData's decision.
 */
import * as asn1js from "asn1js";
import { pkijs, x509 } from "../../core/crypto/engine.ts";
import type { ExeInfo } from "../_shared/filetype/filetype.ts";

export interface AuthenticodeSigner {
  /** SHA-256 of the signer certificate (DER), lower-case hex: the LocalRepData signer key. */
  thumbprint: string;
  subject: string;
  issuer: string;
  serial: string;
  digestAlgorithm: string;
}

export type AuthenticodeResult =
  | { status: "unsigned" }
  | { status: "valid"; signer: AuthenticodeSigner }
  | { status: "invalid"; reason: string; signer?: AuthenticodeSigner };

const SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4";
const MESSAGE_DIGEST = "1.2.840.113549.1.9.4";
const DIGESTS: Record<string, { name: string; webcrypto: string }> = {
  "1.3.14.3.2.26": { name: "sha1", webcrypto: "SHA-1" },
  "2.16.840.1.101.3.4.2.1": { name: "sha256", webcrypto: "SHA-256" },
  "2.16.840.1.101.3.4.2.2": { name: "sha384", webcrypto: "SHA-384" },
  "2.16.840.1.101.3.4.2.3": { name: "sha512", webcrypto: "SHA-512" },
};
/** Signatures over a table larger than this are not parsed (real ones are a few KiB to ~100 KiB). */
const MAX_CERT_TABLE = 1 << 20;

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The Authenticode image hash (A3). */
export function authenticodeHash(d: Uint8Array, pe: NonNullable<ExeInfo["pe"]>, algo: string): Uint8Array {
  const h = new Bun.CryptoHasher(algo as "sha256");
  const end = pe.certTable ? pe.certTable.offset : d.length;
  h.update(d.subarray(0, pe.checksumOffset));
  h.update(d.subarray(pe.checksumOffset + 4, pe.securityDirOffset));
  h.update(d.subarray(pe.securityDirOffset + 8, end));
  return new Uint8Array(h.digest());
}

export async function checkAuthenticode(d: Uint8Array, info: ExeInfo): Promise<AuthenticodeResult> {
  const pe = info.pe;
  if (!pe?.certTable) return { status: "unsigned" };
  const invalid = (reason: string, signer?: AuthenticodeSigner): AuthenticodeResult => ({
    status: "invalid",
    reason,
    ...(signer ? { signer } : {}),
  });
  const { offset, size } = pe.certTable;
  if (size > MAX_CERT_TABLE) return invalid("A1: certificate table too large");
  // A1
  const len = d[offset]! | (d[offset + 1]! << 8) | (d[offset + 2]! << 16) | (d[offset + 3]! << 24);
  const revision = d[offset + 4]! | (d[offset + 5]! << 8);
  const type = d[offset + 6]! | (d[offset + 7]! << 8);
  if (len < 8 || len > size || type !== 0x0002 || (revision !== 0x0200 && revision !== 0x0100)) {
    return invalid("A1: not a PKCS#7 WIN_CERTIFICATE");
  }
  const der = d.slice(offset + 8, offset + len);
  let signedData: pkijs.SignedData;
  try {
    const parsed = asn1js.fromBER(der, { maxDepth: 64, maxNodes: 65536 } as never);
    if (parsed.offset === -1) throw new Error("not BER");
    const ci = new pkijs.ContentInfo({ schema: parsed.result });
    signedData = new pkijs.SignedData({ schema: ci.content });
  } catch (e) {
    return invalid(`A1: SignedData does not parse (${(e as Error).message})`);
  }
  // A2
  const eci = signedData.encapContentInfo;
  if (eci.eContentType !== SPC_INDIRECT_DATA || !eci.eContent)
    return invalid("A2: not SpcIndirectDataContent");
  const spc = eci.eContent as unknown as asn1js.Sequence;
  const spcValue = spc.valueBlock?.value;
  const digestInfo = Array.isArray(spcValue) ? (spcValue[1] as asn1js.Sequence | undefined) : undefined;
  const diParts = digestInfo?.valueBlock?.value;
  const algId = Array.isArray(diParts) ? (diParts[0] as asn1js.Sequence) : undefined;
  const digestOct = Array.isArray(diParts) ? diParts[1] : undefined;
  const oid = (algId?.valueBlock?.value?.[0] as asn1js.ObjectIdentifier | undefined)?.valueBlock?.toString();
  const digest = oid ? DIGESTS[oid] : undefined;
  if (!digest || !(digestOct instanceof asn1js.OctetString))
    return invalid("A2: missing or unknown DigestInfo");

  const signerInfo = signedData.signerInfos[0];
  if (!signerInfo || signedData.signerInfos.length !== 1) return invalid("A5: exactly one signer required");
  const certs = (signedData.certificates ?? []).filter((c) => c instanceof pkijs.Certificate);
  const signerCert = certs.find((c) => {
    const sid = signerInfo.sid;
    return (
      sid instanceof pkijs.IssuerAndSerialNumber &&
      sid.issuer.isEqual(c.issuer) &&
      sid.serialNumber.isEqual(c.serialNumber)
    );
  });
  if (!signerCert) return invalid("A5: signer certificate not embedded");
  const certDer = new Uint8Array(signerCert.toSchema().toBER());
  const xcert = new x509.X509Certificate(certDer);
  const signer: AuthenticodeSigner = {
    thumbprint: new Bun.CryptoHasher("sha256").update(certDer).digest("hex"),
    subject: xcert.subject,
    issuer: xcert.issuer,
    serial: xcert.serialNumber,
    digestAlgorithm: digest.name,
  };

  // A3
  const actual = authenticodeHash(d, pe, digest.name);
  if (!equal(actual, digestOct.valueBlock.valueHexView))
    return invalid("A3: file does not match its signed hash", signer);

  // A4: messageDigest is over the SpcIndirectDataContent contents (without its tag and length).
  const spcDer = new Uint8Array(spc.toBER());
  const contents = spcDer.subarray(spcLengthOfHeader(spcDer));
  const attrs = signerInfo.signedAttrs;
  const md = attrs?.attributes.find((a) => a.type === MESSAGE_DIGEST)?.values[0];
  const signerDigest = DIGESTS[signerInfo.digestAlgorithm.algorithmId];
  if (!attrs || !(md instanceof asn1js.OctetString) || !signerDigest)
    return invalid("A4: no messageDigest", signer);
  const contentHash = new Uint8Array(
    new Bun.CryptoHasher(signerDigest.name as "sha256").update(contents).digest(),
  );
  if (!equal(contentHash, md.valueBlock.valueHexView)) return invalid("A4: messageDigest mismatch", signer);

  // A5
  try {
    const ok = await verifySignature(xcert, signerInfo, signerDigest.webcrypto, attrs.encodedValue);
    if (!ok) return invalid("A5: signature does not verify", signer);
  } catch (e) {
    return invalid(`A5: ${(e as Error).message}`, signer);
  }
  return { status: "valid", signer };
}

function spcLengthOfHeader(der: Uint8Array): number {
  const l = der[1]!;
  return l < 0x80 ? 2 : 2 + (l & 0x7f);
}

async function verifySignature(
  cert: x509.X509Certificate,
  signerInfo: pkijs.SignerInfo,
  hash: string,
  signedAttrs: ArrayBuffer,
): Promise<boolean> {
  const keyAlg = cert.publicKey.algorithm as { name: string; namedCurve?: string };
  const sig = signerInfo.signature.valueBlock.valueHexView;
  if (keyAlg.name === "RSASSA-PKCS1-v1_5" || keyAlg.name === "RSA-PSS" || keyAlg.name === "RSA-OAEP") {
    const key = await cert.publicKey.export({ name: "RSASSA-PKCS1-v1_5", hash }, ["verify"]);
    return crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, sig as Uint8Array<ArrayBuffer>, signedAttrs);
  }
  if (keyAlg.name === "ECDSA" && keyAlg.namedCurve) {
    const size = keyAlg.namedCurve === "P-256" ? 32 : keyAlg.namedCurve === "P-384" ? 48 : 66;
    const raw = ecdsaDerToRaw(sig, size);
    if (!raw) return false;
    const key = await cert.publicKey.export({ name: "ECDSA", namedCurve: keyAlg.namedCurve }, ["verify"]);
    return crypto.subtle.verify({ name: "ECDSA", hash }, key, raw as Uint8Array<ArrayBuffer>, signedAttrs);
  }
  throw new Error(`unsupported signer key ${keyAlg.name}`);
}

function ecdsaDerToRaw(der: Uint8Array, size: number): Uint8Array | null {
  try {
    const parsed = asn1js.fromBER(der);
    const seq = parsed.result as asn1js.Sequence;
    const [r, s] = seq.valueBlock.value as asn1js.Integer[];
    if (!r || !s) return null;
    const out = new Uint8Array(size * 2);
    const put = (v: Uint8Array, at: number) => {
      const t = v[0] === 0 ? v.subarray(1) : v;
      if (t.length > size) throw new Error("integer too long");
      out.set(t, at + size - t.length);
    };
    put(r.valueBlock.valueHexView, 0);
    put(s.valueBlock.valueHexView, size);
    return out;
  } catch {
    return null;
  }
}
