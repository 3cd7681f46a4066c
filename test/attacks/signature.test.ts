/**
 * Attacks on the package signature and its certificate chain (R8): every
 * package here is a well-formed tar with a manifest that matches its payload;
 * only the signature or the signer is wrong.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { sha384Hex } from "../../core/crypto/digest.ts";
import { x509 } from "../../core/crypto/engine.ts";
import {
  CODE_SIGNING_EKU,
  generateKeyPair,
  issueCertificate,
  type SigningKeys,
} from "../../core/crypto/keys.ts";
import { makeCert, makeCertChain } from "../../core/crypto/testing.ts";
import {
  assemble,
  loadIntermediate,
  nextIndex,
  publishRaw,
  putPackage,
  signerUnder,
  splitPackage,
  writeSignedIndex,
} from "./craft.ts";
import { expectRejected, GROUP, installGood, type Scene, TYPE } from "./harness.ts";

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
const TLS_SERVER_EKU = "1.3.6.1.5.5.7.3.1";

let scene: Scene | undefined;
afterEach(async () => {
  await scene?.cleanup();
  scene = undefined;
});

/** Packs TestText v2 with `keys` (and signingTime `now`) and publishes it with a matching index entry. */
async function offerSignedBy(s: Scene, keys: SigningKeys, now?: Date, text = "evil v2") {
  const bytes = await s.vendor.pack(TYPE, 2, { "data.txt": text }, { keys, now });
  return publishRaw(s.vendor.repo, GROUP, s.vendor.keys, { type: TYPE, version: 2, bytes });
}

describe("package signature and chain (R8)", () => {
  test("manifest rewritten after signing to cover a changed payload → SIG_DIGEST_MISMATCH", async () => {
    scene = await installGood();
    const parts = splitPackage(await scene.vendor.pack(TYPE, 2, { "data.txt": "good v2" }));
    const evil = new TextEncoder().encode("evil v2, longer than the original");
    const manifest = JSON.parse(new TextDecoder().decode(parts.manifest));
    manifest.files[0].size = evil.length;
    manifest.files[0].sha384 = sha384Hex(evil);
    parts.manifest = new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`);
    parts.payload = [{ path: "payload/data.txt", data: evil }];
    const entry = await publishRaw(scene.vendor.repo, GROUP, scene.vendor.keys, {
      type: TYPE,
      version: 2,
      bytes: assemble(parts),
    });
    await expectRejected(scene, { code: "SIG_DIGEST_MISMATCH", file: entry.path, type: TYPE });
  });

  test("signer from another root → SIG_UNTRUSTED_CHAIN", async () => {
    scene = await installGood();
    const other = await makeCertChain({ name: "Outpost" });
    const entry = await offerSignedBy(scene, other.signingKeys);
    await expectRejected(scene, { code: "SIG_UNTRUSTED_CHAIN", file: entry.path, type: TYPE });
  });

  test("self-signed signer certificate → SIG_UNTRUSTED_CHAIN", async () => {
    scene = await installGood();
    const self = await makeCert({
      commonName: "Outpost Content Signer",
      basicConstraints: { ca: false },
      keyUsage: x509.KeyUsageFlags.digitalSignature,
      extendedKeyUsage: [CODE_SIGNING_EKU],
    });
    const entry = await offerSignedBy(scene, {
      signerCert: self.der,
      chain: [],
      privateKey: self.keys.privateKey,
    });
    await expectRejected(scene, { code: "SIG_UNTRUSTED_CHAIN", file: entry.path, type: TYPE });
  });

  test("expired signer certificate under the real intermediate → SIG_CERT_EXPIRED", async () => {
    scene = await installGood();
    const now = Date.now();
    const keys = await signerUnder(await loadIntermediate(scene.vendor.keysDir), {
      notBefore: new Date(now - 3 * DAY),
      notAfter: new Date(now - HOUR),
    });
    // Signed while the certificate was still valid: only its expiry is wrong.
    const entry = await offerSignedBy(scene, keys, new Date(now - 2 * HOUR));
    await expectRejected(scene, { code: "SIG_CERT_EXPIRED", file: entry.path, type: TYPE });
  });

  test("not-yet-valid signer certificate under the real intermediate → SIG_CERT_NOT_YET_VALID", async () => {
    scene = await installGood();
    const now = Date.now();
    const keys = await signerUnder(await loadIntermediate(scene.vendor.keysDir), {
      notBefore: new Date(now + DAY),
      notAfter: new Date(now + 30 * DAY),
    });
    const entry = await offerSignedBy(scene, keys);
    await expectRejected(scene, { code: "SIG_CERT_NOT_YET_VALID", file: entry.path, type: TYPE });
  });

  test("signer with a TLS-server EKU instead of code signing → SIG_MISSING_EKU", async () => {
    scene = await installGood();
    const keys = await signerUnder(await loadIntermediate(scene.vendor.keysDir), {
      extendedKeyUsage: [TLS_SERVER_EKU],
    });
    const entry = await offerSignedBy(scene, keys);
    await expectRejected(scene, { code: "SIG_MISSING_EKU", file: entry.path, type: TYPE });
  });

  test("signer without any EKU → SIG_MISSING_EKU", async () => {
    scene = await installGood();
    const keys = await signerUnder(await loadIntermediate(scene.vendor.keysDir), { extendedKeyUsage: null });
    const entry = await offerSignedBy(scene, keys);
    await expectRejected(scene, { code: "SIG_MISSING_EKU", file: entry.path, type: TYPE });
  });

  test("control: a signer made the same way but valid is accepted (the helpers only break what they are told to)", async () => {
    scene = await installGood();
    const keys = await signerUnder(await loadIntermediate(scene.vendor.keysDir));
    await offerSignedBy(scene, keys);
    const report = await scene.t.agent.update();
    expect(report.rejected).toEqual([]);
    expect(report.installed).toEqual([{ type: TYPE, version: 2, previousVersion: 1 }]);
  });
});

describe("certificate path building tries every candidate (R1, R8)", () => {
  /**
   * A self-signed CA certificate with the intermediate's exact subject but a
   * weak P-256 key: what a mirror can add to any signature, since the CMS
   * certificate set is not covered by it.
   */
  async function weakDecoy(keysDir: string): Promise<Uint8Array> {
    const intermediate = await loadIntermediate(keysDir);
    const keys = await generateKeyPair("P-256");
    const now = Date.now();
    const cert = await issueCertificate({
      commonName: intermediate.cert.subjectName.getField("CN")[0]!,
      organization: intermediate.cert.subjectName.getField("O")[0],
      publicKey: keys.publicKey,
      selfSigningKey: keys.privateKey,
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 30 * DAY),
      basicConstraints: { ca: true },
      keyUsage: x509.KeyUsageFlags.keyCertSign,
    });
    expect(cert.subject).toBe(intermediate.cert.subject);
    return new Uint8Array(cert.rawData);
  }

  test("index signature with a weak self-signed decoy named like the intermediate prepended → still installs", async () => {
    scene = await installGood();
    const decoy = await weakDecoy(scene.vendor.keysDir);
    const keys: SigningKeys = { ...scene.vendor.keys, chain: [decoy, ...scene.vendor.keys.chain] };
    const v2 = putPackage(scene.vendor.repo, {
      type: TYPE,
      version: 2,
      bytes: await scene.vendor.pack(TYPE, 2, { "data.txt": "good v2" }),
    });
    await writeSignedIndex(scene.vendor.repo, nextIndex(scene.vendor.repo, GROUP, { [TYPE]: v2 }), keys);
    const report = await scene.t.agent.update();
    expect(report.rejected).toEqual([]);
    expect(report.installed).toEqual([{ type: TYPE, version: 2, previousVersion: 1 }]);
  });

  test("package signature with the same decoy prepended → still installs", async () => {
    scene = await installGood();
    const decoy = await weakDecoy(scene.vendor.keysDir);
    await offerSignedBy(
      scene,
      { ...scene.vendor.keys, chain: [decoy, ...scene.vendor.keys.chain] },
      undefined,
      "good v2",
    );
    const report = await scene.t.agent.update();
    expect(report.rejected).toEqual([]);
    expect(report.installed).toEqual([{ type: TYPE, version: 2, previousVersion: 1 }]);
  });

  test("control: the decoy alone (no real intermediate) → SIG_UNTRUSTED_CHAIN, not a silent pass", async () => {
    scene = await installGood();
    const decoy = await weakDecoy(scene.vendor.keysDir);
    const entry = await offerSignedBy(scene, { ...scene.vendor.keys, chain: [decoy] });
    await expectRejected(scene, { code: "SIG_UNTRUSTED_CHAIN", file: entry.path, type: TYPE });
  });
});
