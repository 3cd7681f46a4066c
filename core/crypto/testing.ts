/**
 * Test PKIs and hostile signatures. Everything here builds real certificates
 * and real CMS structures, only with the knobs turned the wrong way: other
 * roots, self-signed signers, expired or not-yet-valid certificates, signers
 * without the EKU, intermediates without the CA flag, weak digests, missing
 * signingTime. Not imported by production code.
 */

import { TrustStore } from "./cms.ts";
import { encodeSignedData, type SignerSpec } from "./cms-sign.ts";
import { x509 } from "./engine.ts";
import {
  CODE_SIGNING_EKU,
  type Curve,
  generateKeyPair,
  type Hash,
  issueCertificate,
  privateKeyToPem,
  type SigningKeys,
} from "./keys.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

/** Overrides for one certificate of a test chain. `null` removes an extension. */
export interface CertOverrides {
  commonName?: string;
  notBefore?: Date;
  notAfter?: Date;
  basicConstraints?: { ca: boolean; pathLength?: number } | null;
  keyUsage?: x509.KeyUsageFlags | null;
  extendedKeyUsage?: string[] | null;
  curve?: Curve;
  /** Hash the issuer signs this certificate with. */
  signingHash?: Hash;
  /** Sign with the certificate's own key instead of its issuer's. */
  selfSigned?: boolean;
  /** Use this key pair instead of generating one. */
  keys?: CryptoKeyPair;
  extraExtensions?: x509.Extension[];
}

export interface TestCert {
  cert: x509.X509Certificate;
  der: Uint8Array;
  pem: string;
  keys: CryptoKeyPair;
}

export interface TestChain {
  root: TestCert;
  intermediate: TestCert;
  signer: TestCert;
  /** Trust store holding only this chain's root. */
  trust: TrustStore;
  /** What signDetached needs: signer cert, intermediate, signer private key. */
  signingKeys: SigningKeys;
  /** Writes root/intermediate/signer PEMs and the signer key (PKCS#8) for openssl. */
  pems(): Promise<{ root: string; intermediate: string; signer: string; signerKey: string }>;
}

type Defaults = {
  commonName: string;
  days: number;
  basicConstraints?: { ca: boolean; pathLength?: number };
  keyUsage?: x509.KeyUsageFlags;
  extendedKeyUsage?: string[];
};

function pick<T>(override: T | null | undefined, fallback: T | undefined): T | undefined {
  if (override === null) return undefined;
  return override === undefined ? fallback : override;
}

/**
 * Issues one test certificate; `issuer` absent (or `selfSigned`) makes it
 * self-signed. Used directly, it sets only the extensions given in `o` (or in
 * `defaults`), valid from a day before `now` for `defaults.days` days.
 */
export async function makeCert(
  o: CertOverrides & { commonName: string },
  issuer?: TestCert,
  now: Date = new Date(),
  defaults: Omit<Defaults, "commonName"> = { days: 30 },
): Promise<TestCert> {
  const keys = o.keys ?? (await generateKeyPair(o.curve ?? "P-384"));
  const cert = await issueCertificate({
    commonName: o.commonName,
    organization: "Outpost Test",
    publicKey: keys.publicKey,
    ...(issuer && !o.selfSigned
      ? {
          issuer: {
            name: issuer.cert.subjectName,
            publicKey: issuer.keys.publicKey,
            privateKey: issuer.keys.privateKey,
          },
        }
      : { selfSigningKey: keys.privateKey }),
    notBefore: o.notBefore ?? new Date(now.getTime() - DAY_MS),
    notAfter: o.notAfter ?? new Date(now.getTime() + defaults.days * DAY_MS),
    basicConstraints: pick(o.basicConstraints, defaults.basicConstraints),
    keyUsage: pick(o.keyUsage, defaults.keyUsage),
    extendedKeyUsage: pick(o.extendedKeyUsage, defaults.extendedKeyUsage),
    signingHash: o.signingHash,
    extraExtensions: o.extraExtensions,
  });
  return { cert, der: new Uint8Array(cert.rawData), pem: cert.toString("pem"), keys };
}

/**
 * A root → intermediate → signer chain shaped like `initKeys` makes it, with
 * per-certificate overrides. Validity is centred on `now` (default: real now).
 */
export async function makeCertChain(
  overrides: {
    now?: Date;
    /** Prefix for the subject names; two chains with the same prefix have identical names. */
    name?: string;
    root?: CertOverrides;
    intermediate?: CertOverrides;
    signer?: CertOverrides;
  } = {},
): Promise<TestChain> {
  const now = overrides.now ?? new Date();
  const name = overrides.name ?? "Outpost Test";
  const caUsage = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;
  const root = await makeCert({ commonName: `${name} Root CA`, ...overrides.root }, undefined, now, {
    days: 3650,
    basicConstraints: { ca: true },
    keyUsage: caUsage,
  });
  const intermediate = await makeCert(
    { commonName: `${name} Intermediate CA`, ...overrides.intermediate },
    root,
    now,
    { days: 1825, basicConstraints: { ca: true, pathLength: 0 }, keyUsage: caUsage },
  );
  const signer = await makeCert({ commonName: `${name} Signer`, ...overrides.signer }, intermediate, now, {
    days: 90,
    basicConstraints: { ca: false },
    keyUsage: x509.KeyUsageFlags.digitalSignature,
    extendedKeyUsage: [CODE_SIGNING_EKU],
  });
  return {
    root,
    intermediate,
    signer,
    trust: TrustStore.fromPem(root.pem, `${name} root`),
    signingKeys: { signerCert: signer.der, chain: [intermediate.der], privateKey: signer.keys.privateKey },
    pems: async () => ({
      root: root.pem,
      intermediate: intermediate.pem,
      signer: signer.pem,
      signerKey: await privateKeyToPem(signer.keys.privateKey),
    }),
  };
}

/**
 * Signs like signDetached but lets a test choose every knob, including the
 * wrong ones: weak hash, no signingTime (`signingTime: null`), a forged
 * messageDigest, zero or several signers, arbitrary embedded certificates.
 */
export async function signDetachedWith(
  content: Uint8Array,
  keys: SigningKeys,
  opts: {
    hash?: Hash;
    signingTime?: Date | null;
    messageDigest?: Uint8Array;
    /** SignerInfos added after the primary one (e.g. a second signer). */
    extraSigners?: SignerSpec[];
    /** Emit a SignedData with no SignerInfo at all. */
    noSigner?: boolean;
    /** Embedded certificates; default signer + chain. */
    certificates?: Uint8Array[];
  } = {},
): Promise<Uint8Array> {
  const primary: SignerSpec = {
    signerCert: keys.signerCert,
    privateKey: keys.privateKey,
    hash: opts.hash ?? "SHA-384",
    signingTime: opts.signingTime === undefined ? new Date() : opts.signingTime,
    ...(opts.messageDigest ? { messageDigest: opts.messageDigest } : {}),
  };
  return encodeSignedData(content, {
    signers: opts.noSigner ? [] : [primary, ...(opts.extraSigners ?? [])],
    certificates: opts.certificates ?? [keys.signerCert, ...keys.chain],
  });
}
