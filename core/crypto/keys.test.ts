import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { TrustStore } from "./cms.ts";
import { signDetached } from "./cms-sign.ts";
import { verifyDetached } from "./cms-verify.ts";
import { x509 } from "./engine.ts";
import {
  CODE_SIGNING_EKU,
  DEFAULT_SIGNER_VALIDITY_DAYS,
  describeKeyDir,
  initKeys,
  KEY_FILES,
  loadSigningKeys,
  NOT_BEFORE_BACKDATE_MS,
} from "./keys.ts";

const NOW = new Date("2026-03-01T12:00:00Z");
const DAY_MS = 86_400_000;

function cert(dir: string, name: string): x509.X509Certificate {
  return new x509.X509Certificate(readFileSync(join(dir, name), "utf8"));
}

async function errorOf(p: Promise<unknown>): Promise<ConfigError> {
  try {
    await p;
  } catch (e) {
    return e as ConfigError;
  }
  throw new Error("expected a rejection");
}

describe("initKeys", () => {
  const base = mkdtempSync(join(tmpdir(), "outpost-keys-"));
  const dir = join(base, "keys");
  let oldUmask = 0;
  beforeAll(async () => {
    // A restrictive umask (0400 keys) must still end with exactly 0600 keys.
    mkdirSync(dir);
    oldUmask = process.umask(0o277);
    try {
      await initKeys(dir, { now: NOW, name: "Acme" });
    } finally {
      process.umask(oldUmask);
    }
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  test("writes every key file; private keys are mode 0600", () => {
    for (const name of Object.values(KEY_FILES)) expect(statSync(join(dir, name)).isFile()).toBe(true);
    for (const name of [KEY_FILES.rootKey, KEY_FILES.intermediateKey, KEY_FILES.signerKey]) {
      expect(statSync(join(dir, name)).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(dir, name), "utf8")).toStartWith("-----BEGIN PRIVATE KEY-----");
    }
  });

  test("root is a self-signed P-384/SHA-384 CA valid ~10 years", async () => {
    const root = cert(dir, KEY_FILES.rootCert);
    expect(root.subject).toBe("CN=Acme Content Root CA, O=Acme");
    expect(await root.isSelfSigned()).toBe(true);
    expect(root.signatureAlgorithm).toMatchObject({ name: "ECDSA", hash: { name: "SHA-384" } });
    expect(root.publicKey.algorithm).toMatchObject({ name: "ECDSA", namedCurve: "P-384" });
    const bc = root.getExtension(x509.BasicConstraintsExtension)!;
    expect(bc.ca).toBe(true);
    expect(bc.critical).toBe(true);
    const ku = root.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    expect(root.notBefore.getTime()).toBe(NOW.getTime() - NOT_BEFORE_BACKDATE_MS);
    expect(Math.round((root.notAfter.getTime() - NOW.getTime()) / DAY_MS)).toBe(3650);
  });

  test("intermediate is a CA with pathLen 0, issued by the root, ~5 years", async () => {
    const root = cert(dir, KEY_FILES.rootCert);
    const inter = cert(dir, KEY_FILES.intermediateCert);
    expect(inter.issuer).toBe(root.subject);
    expect(await inter.verify({ publicKey: root.publicKey, signatureOnly: true })).toBe(true);
    const bc = inter.getExtension(x509.BasicConstraintsExtension)!;
    expect(bc.ca).toBe(true);
    expect(bc.pathLength).toBe(0);
    expect(Math.round((inter.notAfter.getTime() - NOW.getTime()) / DAY_MS)).toBe(1825);
  });

  test("signer is a short-lived code-signing end entity issued by the intermediate", async () => {
    const inter = cert(dir, KEY_FILES.intermediateCert);
    const signer = cert(dir, KEY_FILES.signerCert);
    expect(await signer.verify({ publicKey: inter.publicKey, signatureOnly: true })).toBe(true);
    expect(signer.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(false);
    expect(signer.getExtension(x509.KeyUsagesExtension)?.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(signer.getExtension(x509.ExtendedKeyUsageExtension)?.usages).toEqual([CODE_SIGNING_EKU]);
    expect((signer.notAfter.getTime() - NOW.getTime()) / DAY_MS).toBe(DEFAULT_SIGNER_VALIDITY_DAYS);
  });

  test("openssl accepts the chain", () => {
    const r = Bun.spawnSync(
      ["openssl", "verify", "-x509_strict", "-purpose", "any", "-attime", String(NOW.getTime() / 1000)]
        .concat([
          "-CAfile",
          join(dir, KEY_FILES.rootCert),
          "-untrusted",
          join(dir, KEY_FILES.intermediateCert),
        ])
        .concat([join(dir, KEY_FILES.signerCert)]),
    );
    expect(r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
  });

  test("refuses to overwrite an existing key dir without force", async () => {
    const before = readFileSync(join(dir, KEY_FILES.rootKey), "utf8");
    const e = await errorOf(initKeys(dir, { now: NOW }));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.code).toBe("CFG_KEYS_EXIST");
    expect(e.file).toBe(dir);
    expect(readFileSync(join(dir, KEY_FILES.rootKey), "utf8")).toBe(before);
  });

  test("force replaces the keys and re-tightens modes", async () => {
    const forced = join(base, "forced");
    await initKeys(forced, { now: NOW });
    const rootBefore = readFileSync(join(forced, KEY_FILES.rootCert), "utf8");
    chmodSync(join(forced, KEY_FILES.signerKey), 0o644);
    await initKeys(forced, { now: NOW, force: true, signerValidityDays: 7 });
    expect(readFileSync(join(forced, KEY_FILES.rootCert), "utf8")).not.toBe(rootBefore);
    expect(statSync(join(forced, KEY_FILES.signerKey)).mode & 0o777).toBe(0o600);
    const signer = cert(forced, KEY_FILES.signerCert);
    expect((signer.notAfter.getTime() - NOW.getTime()) / DAY_MS).toBe(7);
  });

  test("an empty existing directory is fine", async () => {
    const empty = mkdtempSync(join(base, "empty-"));
    await initKeys(empty, { now: NOW });
    expect(statSync(join(empty, KEY_FILES.signerCert)).isFile()).toBe(true);
  });

  test("rejects a nonsensical signer validity", async () => {
    for (const days of [0, -1, 1.5, 100_000]) {
      const e = await errorOf(initKeys(join(base, `bad-${days}`), { now: NOW, signerValidityDays: days }));
      expect(e.code).toBe("CFG_KEYS_INVALID");
    }
  });

  test("describeKeyDir lists files with SHA-256 fingerprints of the certificates", async () => {
    const files = await describeKeyDir(dir);
    expect(files.map((f) => f.name).sort()).toEqual(Object.values(KEY_FILES).sort());
    const root = files.find((f) => f.name === KEY_FILES.rootCert)!;
    const der = new Uint8Array(cert(dir, KEY_FILES.rootCert).rawData);
    expect(root.sha256).toBe(new Bun.CryptoHasher("sha256").update(der).digest("hex"));
    expect(files.find((f) => f.name === KEY_FILES.rootKey)).toMatchObject({ kind: "private-key" });
    expect(files.find((f) => f.name === KEY_FILES.rootKey)?.sha256).toBeUndefined();
  });
});

describe("loadSigningKeys", () => {
  const base = mkdtempSync(join(tmpdir(), "outpost-loadkeys-"));
  const dir = join(base, "keys");
  beforeAll(() => initKeys(dir));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  test("loads signer key, certificate and intermediate; they sign verifiable content", async () => {
    const keys = await loadSigningKeys(dir);
    expect(keys.chain).toHaveLength(1);
    expect(keys.privateKey.extractable).toBe(false);
    expect(keys.privateKey.usages).toEqual(["sign"]);
    const content = new TextEncoder().encode("content");
    const now = new Date();
    const p7s = await signDetached(content, keys, { signingTime: now });
    const trust = await TrustStore.load(join(dir, KEY_FILES.rootCert));
    const verified = await verifyDetached(content, p7s, trust, { now, file: "c.pkg" });
    expect(verified.signerSubject).toBe("CN=Outpost Content Signer, O=Outpost");
  });

  test("a missing file is CFG_SIGNING_KEYS naming the file", async () => {
    const e = await errorOf(loadSigningKeys(join(base, "nope")));
    expect(e.code).toBe("CFG_SIGNING_KEYS");
    expect(e.file).toContain(join(base, "nope"));
  });

  test("a key that does not belong to the certificate is refused", async () => {
    const other = join(base, "other");
    await initKeys(other);
    const mixed = join(base, "mixed");
    await initKeys(mixed);
    writeFileSync(join(mixed, KEY_FILES.signerKey), readFileSync(join(other, KEY_FILES.signerKey)));
    const e = await errorOf(loadSigningKeys(mixed));
    expect(e.code).toBe("CFG_SIGNING_KEYS");
    expect(e.message).toContain("does not belong");
  });

  test("a corrupt key file is refused", async () => {
    const bad = join(base, "bad");
    await initKeys(bad);
    writeFileSync(
      join(bad, KEY_FILES.signerKey),
      "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    const e = await errorOf(loadSigningKeys(bad));
    expect(e.code).toBe("CFG_SIGNING_KEYS");
    expect(e.file).toBe(join(bad, KEY_FILES.signerKey));
  });
});
