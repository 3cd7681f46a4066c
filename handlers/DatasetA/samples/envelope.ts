/**
 * The sample envelope (docs/sxl.md, "Sample upload"): a file and its
 * detection metadata, encrypted to the vendor's P-384 public key so only
 * the vendor can read it — not a proxy, not a disk image of the queue.
 *
 *   "OPSMPL1\0" (8) | key id (32) | ephemeral P-384 public key, uncompressed (97) | IV (12) | AES-256-GCM ciphertext+tag
 *
 * key id = SHA-256 of the vendor public key (SPKI DER), so the vendor knows
 * which key to use and a wrong key fails before any decryption. The AES key
 * is HKDF-SHA-384(ECDH(ephemeral, vendor), salt = key id, info =
 * "outpost-sample-v1" ‖ ephemeral public key). The whole header is the
 * GCM additional data: it cannot be swapped without failing authentication.
 * The plaintext is a ustar archive of `meta.json` and `sample.bin`.
 */
import { readFileSync } from "node:fs";
import { sha256 } from "../../../core/crypto/digest.ts";
import { OutpostError } from "../../../core/errors.ts";
import { readTar, writeTar } from "../../../core/package/tar.ts";

export class SampleError extends OutpostError {}

export const MAGIC = new TextEncoder().encode("OPSMPL1\0");
const INFO = new TextEncoder().encode("outpost-sample-v1");
const KEY_ID = 32;
const POINT = 97;
const IV = 12;
export const HEADER_BYTES = MAGIC.length + KEY_ID + POINT + IV;
/** Largest sample the agent submits (the Live Protection rule). */
export const MAX_SAMPLE_BYTES = 10 * 1024 * 1024;

export interface SampleMeta {
  schema: 1;
  idempotencyKey: string;
  sha256: string;
  size: number;
  /** Base name only: full paths can name users and projects. */
  fileName: string;
  fileKind: string;
  detection: { name: string; kind: string; source?: string };
  sxl?: { verdict: string; sample: boolean };
  agent: { version: string; host: string };
  createdAt: string;
}

function pemBody(pem: string, label: string): Uint8Array {
  const m = pem.match(new RegExp(`-----BEGIN ${label}-----([^-]+)-----END ${label}-----`));
  if (!m) throw new SampleError("SMP_BAD_KEY", `expected a PEM ${label}`);
  return new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ""), "base64"));
}

export function toPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der)
    .toString("base64")
    .replace(/(.{64})/g, "$1\n");
  return `-----BEGIN ${label}-----\n${b64.trim()}\n-----END ${label}-----\n`;
}

export interface VendorPublicKey {
  key: CryptoKey;
  id: Uint8Array;
}

export async function importVendorPublicKey(pem: string, file = "<pem>"): Promise<VendorPublicKey> {
  const spki = pemBody(pem, "PUBLIC KEY");
  try {
    const key = await crypto.subtle.importKey(
      "spki",
      spki as Uint8Array<ArrayBuffer>,
      { name: "ECDH", namedCurve: "P-384" },
      true,
      [],
    );
    return { key, id: sha256(spki) };
  } catch (e) {
    throw new SampleError("SMP_BAD_KEY", `${file}: not an ECDH P-384 public key (${(e as Error).message})`, {
      file,
    });
  }
}

export async function loadVendorPublicKey(path: string): Promise<VendorPublicKey> {
  return importVendorPublicKey(readFileSync(path, "utf8"), path);
}

export interface VendorPrivateKey {
  key: CryptoKey;
  id: Uint8Array;
}

export async function importVendorPrivateKey(pem: string, file = "<pem>"): Promise<VendorPrivateKey> {
  const pkcs8 = pemBody(pem, "PRIVATE KEY");
  try {
    const key = await crypto.subtle.importKey(
      "pkcs8",
      pkcs8 as Uint8Array<ArrayBuffer>,
      { name: "ECDH", namedCurve: "P-384" },
      true,
      ["deriveBits"],
    );
    // The key id is over the public half: export it through JWK (x, y) to SPKI.
    const jwk = await crypto.subtle.exportKey("jwk", key);
    const pub = await crypto.subtle.importKey(
      "jwk",
      { kty: "EC", crv: "P-384", x: jwk.x, y: jwk.y },
      { name: "ECDH", namedCurve: "P-384" },
      true,
      [],
    );
    const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pub));
    return { key, id: sha256(spki) };
  } catch (e) {
    throw new SampleError("SMP_BAD_KEY", `${file}: not an ECDH P-384 private key (${(e as Error).message})`, {
      file,
    });
  }
}

/** A vendor key pair as PEM (what `contentctl samples keygen` writes). */
export async function generateVendorKeys(): Promise<{ publicPem: string; privatePem: string }> {
  const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-384" }, true, ["deriveBits"]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  return { publicPem: toPem(spki, "PUBLIC KEY"), privatePem: toPem(pkcs8, "PRIVATE KEY") };
}

async function aesKey(
  shared: ArrayBuffer,
  keyId: Uint8Array,
  ephemeral: Uint8Array,
  usage: "encrypt" | "decrypt",
): Promise<CryptoKey> {
  const ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
  const info = new Uint8Array(INFO.length + ephemeral.length);
  info.set(INFO);
  info.set(ephemeral, INFO.length);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-384", salt: keyId as Uint8Array<ArrayBuffer>, info },
    ikm,
    { name: "AES-GCM", length: 256 },
    false,
    [usage],
  );
}

export async function sealSample(
  meta: SampleMeta,
  sample: Uint8Array,
  vendor: VendorPublicKey,
): Promise<Uint8Array> {
  const plaintext = writeTar([
    { path: "meta.json", data: new TextEncoder().encode(JSON.stringify(meta)) },
    { path: "sample.bin", data: sample },
  ]);
  const eph = (await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-384" }, true, [
    "deriveBits",
  ])) as CryptoKeyPair;
  const ephRaw = new Uint8Array(await crypto.subtle.exportKey("raw", eph.publicKey));
  const shared = await crypto.subtle.deriveBits({ name: "ECDH", public: vendor.key }, eph.privateKey, 384);
  const iv = crypto.getRandomValues(new Uint8Array(IV));
  const header = new Uint8Array(HEADER_BYTES);
  header.set(MAGIC, 0);
  header.set(vendor.id, MAGIC.length);
  header.set(ephRaw, MAGIC.length + KEY_ID);
  header.set(iv, MAGIC.length + KEY_ID + POINT);
  const key = await aesKey(shared, vendor.id, ephRaw, "encrypt");
  const ct = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: header },
      key,
      plaintext as Uint8Array<ArrayBuffer>,
    ),
  );
  const out = new Uint8Array(header.length + ct.length);
  out.set(header);
  out.set(ct, header.length);
  return out;
}

export async function openSample(
  envelope: Uint8Array,
  vendor: VendorPrivateKey,
): Promise<{ meta: unknown; sample: Uint8Array }> {
  if (envelope.length < HEADER_BYTES + 16)
    throw new SampleError("SMP_MALFORMED", "envelope shorter than its header");
  for (let i = 0; i < MAGIC.length; i++) {
    if (envelope[i] !== MAGIC[i]) throw new SampleError("SMP_MALFORMED", "not an Outpost sample envelope");
  }
  const header = envelope.subarray(0, HEADER_BYTES);
  const keyId = header.subarray(MAGIC.length, MAGIC.length + KEY_ID);
  if (Buffer.compare(Buffer.from(keyId), Buffer.from(vendor.id)) !== 0) {
    throw new SampleError("SMP_WRONG_KEY", "envelope is encrypted to a different vendor key");
  }
  const ephRaw = header.slice(MAGIC.length + KEY_ID, MAGIC.length + KEY_ID + POINT);
  const iv = header.slice(MAGIC.length + KEY_ID + POINT);
  let plaintext: Uint8Array;
  try {
    const eph = await crypto.subtle.importKey(
      "raw",
      ephRaw,
      { name: "ECDH", namedCurve: "P-384" },
      false,
      [],
    );
    const shared = await crypto.subtle.deriveBits({ name: "ECDH", public: eph }, vendor.key, 384);
    const key = await aesKey(shared, vendor.id, ephRaw, "decrypt");
    plaintext = new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv, additionalData: header.slice() },
        key,
        envelope.slice(HEADER_BYTES),
      ),
    );
  } catch (e) {
    throw new SampleError("SMP_DECRYPT_FAILED", `envelope does not decrypt (${(e as Error).message})`);
  }
  const entries = readTar(plaintext, {
    file: "sample envelope",
    maxEntries: 2,
    maxEntryBytes: MAX_SAMPLE_BYTES + 1024 * 1024,
  });
  const meta = entries.find((e) => e.path === "meta.json");
  const sample = entries.find((e) => e.path === "sample.bin");
  if (!meta || !sample || entries.length !== 2)
    throw new SampleError("SMP_MALFORMED", "envelope must hold meta.json and sample.bin");
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(meta.data));
  } catch {
    throw new SampleError("SMP_MALFORMED", "meta.json is not JSON");
  }
  return { meta: parsed, sample: sample.data };
}

/** One key per (file, detection): the same sample is never queued, sent or stored twice. */
export function idempotencyKey(sha256: string, detection: string): string {
  return new Bun.CryptoHasher("sha256")
    .update(`outpost-sample-v1\0${sha256.toLowerCase()}\0${detection}`)
    .digest("hex");
}
