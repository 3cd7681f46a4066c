/**
 * Detached CMS SignedData (RFC 5652) over content packages: the vocabulary
 * both sides share (OIDs, accepted algorithms, limits, DER helpers) and the
 * pinned trust store. Signing is in cms-sign.ts (the vendor side,
 * contentctl); verification in cms-verify.ts (the agent), written out check
 * by check with rule ids C1–C16.
 *
 * Chain building and validation are done with @peculiar/x509 rather than by
 * pkijs's chain engine so that every rule is visible and tested. The content
 * digest is computed with Bun's native hasher (it dominates the cost for
 * large packages) and the signature is checked over the DER signed
 * attributes with WebCrypto; pkijs only parses and encodes structures.
 */
import * as asn1js from "asn1js";
import { ConfigError } from "../errors.ts";
import { sha256Hex } from "./digest.ts";
import { x509 } from "./engine.ts";
import type { Hash } from "./keys.ts";
import { readTrustPem } from "./trust-file.ts";

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

export const OID_NAMES = new Map<string, string>(Object.entries(OID).map(([name, oid]) => [oid, name]));
export function oidName(oid: string): string {
  const name = OID_NAMES.get(oid);
  return name ? `${name} (${oid})` : oid;
}

/** Tolerated difference between the signer's clock and ours when judging signingTime. */
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;
/** Longest accepted path, signer to trust anchor inclusive; ours is 3. */
export const MAX_PATH_LENGTH = 5;
/** A real signature embeds 2 certificates; more is an attempt to make path building expensive. */
export const MAX_EMBEDDED_CERTS = 8;

export const HASH_OIDS: Record<
  Hash,
  { digest: string; signature: string; bun: "sha256" | "sha384" | "sha512" }
> = {
  "SHA-256": { digest: OID.sha256, signature: OID.ecdsaWithSha256, bun: "sha256" },
  "SHA-384": { digest: OID.sha384, signature: OID.ecdsaWithSha384, bun: "sha384" },
  "SHA-512": { digest: OID.sha512, signature: OID.ecdsaWithSha512, bun: "sha512" },
};

/** The only curves and certificate signature hashes the content PKI may use. */
export const STRONG_CURVES = new Set(["P-384", "P-521"]);
export const STRONG_CERT_HASHES = new Set(["SHA-384", "SHA-512"]);
export const SIGNER_CURVE = "P-384";
/** Extensions whose semantics this verifier enforces; any other critical one is rejected. */
export const UNDERSTOOD_EXTENSIONS = new Set<string>([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
]);

export const CURVE_BYTES: Record<string, number> = { "P-256": 32, "P-384": 48, "P-521": 66 };

// ---------------------------------------------------------------------------
// ECDSA signature encoding: CMS carries Ecdsa-Sig-Value (DER SEQUENCE of two
// INTEGERs); WebCrypto produces and expects the raw r||s concatenation.

export function derLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

export function derInteger(unsigned: Uint8Array): Uint8Array {
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

/** The DER encoding of a pkijs/asn1js structure. */
export function derBytes(schema: { toBER(sizeOnly?: boolean): ArrayBuffer }): Uint8Array {
  return new Uint8Array(schema.toBER(false));
}

// ---------------------------------------------------------------------------
// Trust store

/** A remembered verification (TrustStore.withVerificationMemo). */
export interface MemoEntry {
  result: VerifiedSignature;
  /** The latest notBefore and earliest notAfter on the verified path. */
  validFrom: number;
  validUntil: number;
}

export interface VerifiedSignature {
  signingTime: Date;
  signerSubject: string;
  /** SHA-256 (hex) of the signer certificate DER. */
  signerSha256: string;
}

/** The pinned roots content must chain to: one PEM bundle with one or more certificates. */
export class TrustStore {
  private constructor(
    readonly roots: readonly x509.X509Certificate[],
    readonly source: string,
    /** Only set by `withVerificationMemo()`. */
    readonly memo?: Map<string, MemoEntry>,
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
    return TrustStore.fromPem(await readTrustPem(path), path);
  }

  /** SHA-256 fingerprints (hex) of the roots, for status output and logs. */
  fingerprints(): string[] {
    return this.roots.map((r) => sha256Hex(new Uint8Array(r.rawData)));
  }
}
