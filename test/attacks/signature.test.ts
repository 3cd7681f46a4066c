/**
 * Attacks on the package signature and its certificate chain (R8): every
 * package here is a well-formed tar with a manifest that matches its payload;
 * only the signature or the signer is wrong.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { sha384Hex } from "../../core/crypto/digest.ts";
import { x509 } from "../../core/crypto/engine.ts";
import { CODE_SIGNING_EKU, type SigningKeys } from "../../core/crypto/keys.ts";
import { makeCert, makeCertChain } from "../../core/crypto/testing.ts";
import { assemble, loadIntermediate, publishRaw, signerUnder, splitPackage } from "./craft.ts";
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
async function offerSignedBy(s: Scene, keys: SigningKeys, now?: Date) {
  const bytes = await s.vendor.pack(TYPE, 2, { "data.txt": "evil v2" }, { keys, now });
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
