import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, SignatureError } from "../errors.ts";
import {
  ecdsaDerToRaw,
  ecdsaRawToDer,
  MAX_CLOCK_SKEW_MS,
  TrustStore,
  type VerifiedSignature,
} from "./cms.ts";
import { signDetached } from "./cms-sign.ts";
import { verifyDetached } from "./cms-verify.ts";
import { sha256Hex, sha384 } from "./digest.ts";
import { x509 } from "./engine.ts";
import { makeCert, makeCertChain, signDetachedWith, type TestChain } from "./testing.ts";

const NOW = new Date("2026-06-01T00:00:00Z");
const MINUTE = 60_000;
const DAY = 86_400_000;
const FILE = "Hmpa_data-7.pkg";
const content = new TextEncoder().encode("signature database v7\n".repeat(100));

let good: TestChain;
let goodSig: Uint8Array;

beforeAll(async () => {
  good = await makeCertChain({ now: NOW });
  goodSig = await signDetached(content, good.signingKeys, { signingTime: NOW });
});

function verify(
  p7s: Uint8Array,
  opts: { data?: Uint8Array; trust?: TrustStore; now?: Date; requiredEku?: string } = {},
): Promise<VerifiedSignature> {
  return verifyDetached(opts.data ?? content, p7s, opts.trust ?? good.trust, {
    now: opts.now ?? NOW,
    file: FILE,
    ...(opts.requiredEku ? { requiredEku: opts.requiredEku } : {}),
  });
}

/** The SIG_* code a verification fails with; also checks the error names the file. */
async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(SignatureError);
    const err = e as SignatureError;
    expect(err.file).toBe(FILE);
    expect(err.message).toContain(FILE);
    return err.code;
  }
  throw new Error("verification unexpectedly succeeded");
}

async function signWithChain(chain: TestChain, signingTime = NOW): Promise<Uint8Array> {
  return signDetached(content, chain.signingKeys, { signingTime });
}

describe("signDetached / verifyDetached round trip", () => {
  test("a fresh signature verifies and reports signer facts", async () => {
    const v = await verify(goodSig);
    expect(v.signingTime).toEqual(NOW);
    expect(v.signerSubject).toBe("CN=Outpost Test Signer, O=Outpost Test");
    expect(v.signerSha256).toBe(sha256Hex(good.signer.der));
  });

  test("signingTime defaults to the current time", async () => {
    const before = Math.floor(Date.now() / 1000) * 1000;
    const chain = await makeCertChain();
    const p7s = await signDetached(content, chain.signingKeys);
    const v = await verifyDetached(content, p7s, chain.trust, { now: new Date(), file: FILE });
    expect(v.signingTime.getTime()).toBeGreaterThanOrEqual(before);
    expect(v.signingTime.getTime()).toBeLessThanOrEqual(Date.now());
  });

  test("empty and large content round-trip", async () => {
    for (const data of [new Uint8Array(0), crypto.getRandomValues(new Uint8Array(65_536)).fill(7, 0, 10)]) {
      const p7s = await signDetached(data, good.signingKeys, { signingTime: NOW });
      expect((await verify(p7s, { data })).signingTime).toEqual(NOW);
    }
  });

  test("embeds signer and intermediate, never the root", async () => {
    const der = Buffer.from(goodSig);
    expect(der.includes(Buffer.from(good.signer.der))).toBe(true);
    expect(der.includes(Buffer.from(good.intermediate.der))).toBe(true);
    expect(der.includes(Buffer.from(good.root.der))).toBe(false);
  });

  test("signing times after 2049 are encoded as GeneralizedTime and still verify", async () => {
    const later = new Date("2051-01-01T00:00:00Z");
    const chain = await makeCertChain({ now: later });
    const p7s = await signDetached(content, chain.signingKeys, { signingTime: later });
    const v = await verifyDetached(content, p7s, chain.trust, { now: later, file: FILE });
    expect(v.signingTime).toEqual(later);
  });

  test("the trust store may hold several roots", async () => {
    const other = await makeCertChain({ now: NOW, name: "Other" });
    const both = TrustStore.fromPem(other.root.pem + good.root.pem, "bundle.pem");
    expect(both.roots).toHaveLength(2);
    expect((await verify(goodSig, { trust: both })).signerSubject).toContain("Outpost Test Signer");
    expect((await verify(await signWithChain(other), { trust: both })).signerSubject).toContain(
      "Other Signer",
    );
  });
});

describe("SIG_MALFORMED", () => {
  test("garbage", async () => {
    expect(await rejection(verify(new TextEncoder().encode("not a signature")))).toBe("SIG_MALFORMED");
  });
  test("truncated DER", async () => {
    expect(await rejection(verify(goodSig.subarray(0, goodSig.length - 10)))).toBe("SIG_MALFORMED");
  });
  test("trailing bytes after the ContentInfo", async () => {
    const padded = new Uint8Array([...goodSig, 0]);
    expect(await rejection(verify(padded))).toBe("SIG_MALFORMED");
  });
  test("a signedData with the wrong outer content type", async () => {
    // contentType OID is the first OID in the DER: turn signedData (…7.2) into data (…7.1).
    const mutated = goodSig.slice();
    const oid = Buffer.from("06092a864886f70d010702", "hex");
    const at = Buffer.from(mutated).indexOf(oid);
    mutated[at + oid.length - 1] = 0x01;
    expect(await rejection(verify(mutated))).toBe("SIG_MALFORMED");
  });
});

describe("SIG_NO_SIGNER", () => {
  test("no SignerInfo", async () => {
    const p7s = await signDetachedWith(content, good.signingKeys, { noSigner: true, signingTime: NOW });
    expect(await rejection(verify(p7s))).toBe("SIG_NO_SIGNER");
  });
  test("two SignerInfos", async () => {
    const p7s = await signDetachedWith(content, good.signingKeys, {
      signingTime: NOW,
      extraSigners: [
        { signerCert: good.signer.der, privateKey: good.signer.keys.privateKey, signingTime: NOW },
      ],
    });
    expect(await rejection(verify(p7s))).toBe("SIG_NO_SIGNER");
  });
  test("signer certificate not embedded", async () => {
    const p7s = await signDetachedWith(content, good.signingKeys, {
      signingTime: NOW,
      certificates: [good.intermediate.der],
    });
    expect(await rejection(verify(p7s))).toBe("SIG_NO_SIGNER");
  });
});

describe("SIG_NO_SIGNING_TIME", () => {
  test("signed attributes without signingTime", async () => {
    const p7s = await signDetachedWith(content, good.signingKeys, { signingTime: null });
    expect(await rejection(verify(p7s))).toBe("SIG_NO_SIGNING_TIME");
  });
});

describe("SIG_DIGEST_MISMATCH", () => {
  test("content changed after signing", async () => {
    const tampered = content.slice();
    tampered[5] = (tampered[5] ?? 0) ^ 1;
    expect(await rejection(verify(goodSig, { data: tampered }))).toBe("SIG_DIGEST_MISMATCH");
  });
  test("content truncated", async () => {
    expect(await rejection(verify(goodSig, { data: content.subarray(0, content.length - 1) }))).toBe(
      "SIG_DIGEST_MISMATCH",
    );
  });
  test("a validly signed messageDigest that is not the content's", async () => {
    const p7s = await signDetachedWith(content, good.signingKeys, {
      signingTime: NOW,
      messageDigest: sha384(new TextEncoder().encode("other content")),
    });
    expect(await rejection(verify(p7s))).toBe("SIG_DIGEST_MISMATCH");
  });
});

describe("SIG_BAD_SIGNATURE", () => {
  test("signature made by a key other than the embedded signer certificate's", async () => {
    const impostor = await makeCertChain({ now: NOW });
    const p7s = await signDetachedWith(
      content,
      { ...good.signingKeys, privateKey: impostor.signer.keys.privateKey },
      {
        signingTime: NOW,
      },
    );
    expect(await rejection(verify(p7s))).toBe("SIG_BAD_SIGNATURE");
  });
  test("signed attributes altered after signing (signingTime moved)", async () => {
    const mutated = goodSig.slice();
    // UTCTime 260601000000Z → 260602000000Z
    const at = Buffer.from(mutated).indexOf(Buffer.from("170d3236303630313030303030305a", "hex"));
    expect(at).toBeGreaterThan(0);
    mutated[at + 7] = "2".charCodeAt(0);
    expect(await rejection(verify(mutated))).toBe("SIG_BAD_SIGNATURE");
  });
  test("signature value bytes flipped", async () => {
    const p7s = await signDetached(content, good.signingKeys, { signingTime: NOW });
    const mutated = p7s.slice();
    mutated[mutated.length - 5] = (mutated[mutated.length - 5] ?? 0) ^ 0xff;
    expect(await rejection(verify(mutated))).toBe("SIG_BAD_SIGNATURE");
  });
});

describe("SIG_WEAK_ALGORITHM", () => {
  test("SHA-256 digest / ecdsa-with-SHA256", async () => {
    const p7s = await signDetachedWith(content, good.signingKeys, { signingTime: NOW, hash: "SHA-256" });
    expect(await rejection(verify(p7s))).toBe("SIG_WEAK_ALGORITHM");
  });
  test("SHA-512 is not SHA-384 either: no algorithm agility", async () => {
    const p7s = await signDetachedWith(content, good.signingKeys, { signingTime: NOW, hash: "SHA-512" });
    expect(await rejection(verify(p7s))).toBe("SIG_WEAK_ALGORITHM");
  });
  test("signer key on P-256", async () => {
    const chain = await makeCertChain({ now: NOW, signer: { curve: "P-256" } });
    expect(await rejection(verify(await signWithChain(chain), { trust: chain.trust }))).toBe(
      "SIG_WEAK_ALGORITHM",
    );
  });
  test("signer certificate signed with SHA-256", async () => {
    const chain = await makeCertChain({ now: NOW, signer: { signingHash: "SHA-256" } });
    expect(await rejection(verify(await signWithChain(chain), { trust: chain.trust }))).toBe(
      "SIG_WEAK_ALGORITHM",
    );
  });
});

describe("SIG_UNTRUSTED_CHAIN", () => {
  test("self-signed signer", async () => {
    const chain = await makeCertChain({ now: NOW, signer: { selfSigned: true } });
    expect(await rejection(verify(await signWithChain(chain)))).toBe("SIG_UNTRUSTED_CHAIN");
  });
  test("self-signed signer named exactly like the trusted root", async () => {
    const chain = await makeCertChain({
      now: NOW,
      signer: { selfSigned: true, commonName: "Outpost Test Root CA" },
    });
    expect(chain.signer.cert.subject).toBe(good.root.cert.subject);
    expect(await rejection(verify(await signWithChain(chain)))).toBe("SIG_UNTRUSTED_CHAIN");
  });
  test("signer from another root with identical names", async () => {
    const other = await makeCertChain({ now: NOW });
    expect(other.root.cert.subject).toBe(good.root.cert.subject);
    expect(await rejection(verify(await signWithChain(other)))).toBe("SIG_UNTRUSTED_CHAIN");
  });
  test("the other root's chain verifies under its own trust store (control)", async () => {
    const other = await makeCertChain({ now: NOW });
    expect((await verify(await signWithChain(other), { trust: other.trust })).signingTime).toEqual(NOW);
  });
  test("intermediate missing from the signature", async () => {
    const p7s = await signDetachedWith(content, good.signingKeys, {
      signingTime: NOW,
      certificates: [good.signer.der],
    });
    expect(await rejection(verify(p7s))).toBe("SIG_UNTRUSTED_CHAIN");
  });
  test("embedding a copy of the other root does not make it trusted", async () => {
    const other = await makeCertChain({ now: NOW, name: "Attacker" });
    const p7s = await signDetachedWith(content, other.signingKeys, {
      signingTime: NOW,
      certificates: [other.signer.der, other.intermediate.der, other.root.der],
    });
    expect(await rejection(verify(p7s))).toBe("SIG_UNTRUSTED_CHAIN");
  });
});

describe("SIG_NOT_CA", () => {
  test("intermediate without basicConstraints", async () => {
    const chain = await makeCertChain({ now: NOW, intermediate: { basicConstraints: null } });
    expect(await rejection(verify(await signWithChain(chain), { trust: chain.trust }))).toBe("SIG_NOT_CA");
  });
  test("intermediate with cA=false", async () => {
    const chain = await makeCertChain({ now: NOW, intermediate: { basicConstraints: { ca: false } } });
    expect(await rejection(verify(await signWithChain(chain), { trust: chain.trust }))).toBe("SIG_NOT_CA");
  });
  test("intermediate whose keyUsage lacks keyCertSign", async () => {
    const chain = await makeCertChain({
      now: NOW,
      intermediate: { keyUsage: x509.KeyUsageFlags.digitalSignature },
    });
    expect(await rejection(verify(await signWithChain(chain), { trust: chain.trust }))).toBe("SIG_NOT_CA");
  });
  test("root without the CA flag", async () => {
    const chain = await makeCertChain({ now: NOW, root: { basicConstraints: null } });
    expect(await rejection(verify(await signWithChain(chain), { trust: chain.trust }))).toBe("SIG_NOT_CA");
  });
  test("intermediate pathLen 0 exceeded by a sub-CA", async () => {
    const chain = await makeCertChain({ now: NOW });
    const sub = await makeCert(
      { commonName: "Sub CA", basicConstraints: { ca: true }, keyUsage: x509.KeyUsageFlags.keyCertSign },
      chain.intermediate,
      NOW,
    );
    const signer = await makeCert(
      {
        commonName: "Deep Signer",
        basicConstraints: { ca: false },
        keyUsage: x509.KeyUsageFlags.digitalSignature,
        extendedKeyUsage: ["1.3.6.1.5.5.7.3.3"],
      },
      sub,
      NOW,
    );
    const keys = {
      signerCert: signer.der,
      chain: [sub.der, chain.intermediate.der],
      privateKey: signer.keys.privateKey,
    };
    const p7s = await signDetached(content, keys, { signingTime: NOW });
    expect(await rejection(verify(p7s, { trust: chain.trust }))).toBe("SIG_NOT_CA");
  });
});

describe("certificate validity at now", () => {
  test("SIG_CERT_EXPIRED: signer expired, even though the signature was made in time", async () => {
    const chain = await makeCertChain({
      now: NOW,
      signer: { notBefore: new Date(NOW.getTime() - 30 * DAY), notAfter: new Date(NOW.getTime() - DAY) },
    });
    const p7s = await signWithChain(chain, new Date(NOW.getTime() - 10 * DAY));
    expect(await rejection(verify(p7s, { trust: chain.trust }))).toBe("SIG_CERT_EXPIRED");
  });
  test("SIG_CERT_EXPIRED: the good chain 91 days later (short signer validity)", async () => {
    expect(await rejection(verify(goodSig, { now: new Date(NOW.getTime() + 91 * DAY) }))).toBe(
      "SIG_CERT_EXPIRED",
    );
  });
  test("SIG_CERT_EXPIRED: expired intermediate", async () => {
    const chain = await makeCertChain({
      now: NOW,
      intermediate: {
        notBefore: new Date(NOW.getTime() - 30 * DAY),
        notAfter: new Date(NOW.getTime() - MINUTE),
      },
    });
    expect(await rejection(verify(await signWithChain(chain), { trust: chain.trust }))).toBe(
      "SIG_CERT_EXPIRED",
    );
  });
  test("SIG_CERT_EXPIRED: expired root", async () => {
    const chain = await makeCertChain({
      now: NOW,
      root: { notBefore: new Date(NOW.getTime() - 30 * DAY), notAfter: new Date(NOW.getTime() - MINUTE) },
    });
    expect(await rejection(verify(await signWithChain(chain), { trust: chain.trust }))).toBe(
      "SIG_CERT_EXPIRED",
    );
  });
  test("SIG_CERT_NOT_YET_VALID: signer valid only from tomorrow", async () => {
    const chain = await makeCertChain({ now: NOW, signer: { notBefore: new Date(NOW.getTime() + DAY) } });
    expect(await rejection(verify(await signWithChain(chain), { trust: chain.trust }))).toBe(
      "SIG_CERT_NOT_YET_VALID",
    );
  });
  test("SIG_CERT_NOT_YET_VALID: intermediate valid only from tomorrow", async () => {
    const chain = await makeCertChain({
      now: NOW,
      intermediate: { notBefore: new Date(NOW.getTime() + DAY) },
    });
    expect(await rejection(verify(await signWithChain(chain), { trust: chain.trust }))).toBe(
      "SIG_CERT_NOT_YET_VALID",
    );
  });
});

describe("signer usage", () => {
  test("SIG_MISSING_EKU: no extendedKeyUsage", async () => {
    const chain = await makeCertChain({ now: NOW, signer: { extendedKeyUsage: null } });
    expect(await rejection(verify(await signWithChain(chain), { trust: chain.trust }))).toBe(
      "SIG_MISSING_EKU",
    );
  });
  test("SIG_MISSING_EKU: serverAuth only", async () => {
    const chain = await makeCertChain({ now: NOW, signer: { extendedKeyUsage: ["1.3.6.1.5.5.7.3.1"] } });
    expect(await rejection(verify(await signWithChain(chain), { trust: chain.trust }))).toBe(
      "SIG_MISSING_EKU",
    );
  });
  test("requiredEku selects another EKU", async () => {
    const custom = "1.3.6.1.4.1.99999.1";
    const chain = await makeCertChain({ now: NOW, signer: { extendedKeyUsage: [custom] } });
    const p7s = await signWithChain(chain);
    expect((await verify(p7s, { trust: chain.trust, requiredEku: custom })).signingTime).toEqual(NOW);
    expect(await rejection(verify(goodSig, { requiredEku: custom }))).toBe("SIG_MISSING_EKU");
  });
  test("SIG_BAD_KEY_USAGE: signer keyUsage without digitalSignature", async () => {
    const chain = await makeCertChain({ now: NOW, signer: { keyUsage: x509.KeyUsageFlags.keyEncipherment } });
    expect(await rejection(verify(await signWithChain(chain), { trust: chain.trust }))).toBe(
      "SIG_BAD_KEY_USAGE",
    );
  });
  test("SIG_BAD_KEY_USAGE: signer is itself a CA", async () => {
    const chain = await makeCertChain({
      now: NOW,
      intermediate: { basicConstraints: { ca: true } },
      signer: { basicConstraints: { ca: true } },
    });
    expect(await rejection(verify(await signWithChain(chain), { trust: chain.trust }))).toBe(
      "SIG_BAD_KEY_USAGE",
    );
  });
  test("SIG_UNKNOWN_CRITICAL_EXTENSION: a critical extension the verifier does not process", async () => {
    const chain = await makeCertChain({
      now: NOW,
      signer: {
        extraExtensions: [new x509.Extension("1.3.6.1.4.1.99999.2", true, Uint8Array.of(0x05, 0x00))],
      },
    });
    expect(await rejection(verify(await signWithChain(chain), { trust: chain.trust }))).toBe(
      "SIG_UNKNOWN_CRITICAL_EXTENSION",
    );
  });
});

describe("signingTime", () => {
  test("SIG_SIGNING_TIME_IN_FUTURE beyond the clock skew", async () => {
    const p7s = await signDetached(content, good.signingKeys, {
      signingTime: new Date(NOW.getTime() + MAX_CLOCK_SKEW_MS + MINUTE),
    });
    expect(await rejection(verify(p7s))).toBe("SIG_SIGNING_TIME_IN_FUTURE");
  });
  test("a signingTime within the clock skew is accepted", async () => {
    const slightlyAhead = new Date(NOW.getTime() + MAX_CLOCK_SKEW_MS - MINUTE);
    const p7s = await signDetached(content, good.signingKeys, { signingTime: slightlyAhead });
    expect((await verify(p7s)).signingTime).toEqual(slightlyAhead);
  });
  test("SIG_SIGNING_TIME_OUTSIDE_VALIDITY: signed before the signer certificate existed", async () => {
    const p7s = await signDetached(content, good.signingKeys, {
      signingTime: new Date(good.signer.cert.notBefore.getTime() - DAY),
    });
    expect(await rejection(verify(p7s))).toBe("SIG_SIGNING_TIME_OUTSIDE_VALIDITY");
  });
});

describe("TrustStore", () => {
  const dir = mkdtempSync(join(tmpdir(), "outpost-trust-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function configCode(p: Promise<unknown> | (() => unknown)): Promise<string> {
    try {
      await (typeof p === "function" ? p() : p);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as ConfigError).code;
    }
    throw new Error("expected a ConfigError");
  }

  test("load reads a PEM bundle and reports fingerprints", async () => {
    const path = join(dir, "roots.pem");
    writeFileSync(path, good.root.pem);
    const trust = await TrustStore.load(path);
    expect(trust.source).toBe(path);
    expect(trust.fingerprints()).toEqual([sha256Hex(good.root.der)]);
    expect((await verify(goodSig, { trust })).signingTime).toEqual(NOW);
  });

  test("CFG_TRUST_STORE: unreadable file", async () => {
    expect(await configCode(TrustStore.load(join(dir, "missing.pem")))).toBe("CFG_TRUST_STORE");
  });

  test("CFG_TRUST_STORE: empty file", async () => {
    const path = join(dir, "empty.pem");
    writeFileSync(path, "");
    expect(await configCode(TrustStore.load(path))).toBe("CFG_TRUST_STORE");
  });

  test("CFG_TRUST_STORE: a private key instead of a certificate", async () => {
    const { signerKey } = await good.pems();
    expect(await configCode(() => TrustStore.fromPem(signerKey, "key.pem"))).toBe("CFG_TRUST_STORE");
  });

  test("CFG_TRUST_STORE: a CERTIFICATE block that does not parse", async () => {
    const pem = "-----BEGIN CERTIFICATE-----\nAAECAwQ=\n-----END CERTIFICATE-----\n";
    expect(await configCode(() => TrustStore.fromPem(pem, "bad.pem"))).toBe("CFG_TRUST_STORE");
  });
});

describe("ECDSA signature encoding", () => {
  test("raw r||s survives DER and back, including high-bit and leading-zero halves", () => {
    const cases = [
      new Uint8Array(96).fill(0xff),
      Uint8Array.from({ length: 96 }, (_, i) => (i === 0 || i === 48 ? 0 : i)),
      crypto.getRandomValues(new Uint8Array(96)),
    ];
    for (const raw of cases) expect(ecdsaDerToRaw(ecdsaRawToDer(raw), 48)).toEqual(raw);
  });
  test("rejects non-signatures", () => {
    expect(ecdsaDerToRaw(Uint8Array.of(1, 2, 3), 48)).toBeNull();
    expect(ecdsaDerToRaw(ecdsaRawToDer(new Uint8Array(132).fill(0x7f)), 48)).toBeNull();
  });
});

describe("openssl interop", () => {
  const dir = mkdtempSync(join(tmpdir(), "outpost-cms-openssl-"));
  const path = (name: string) => join(dir, name);
  const attime = String(Math.floor(NOW.getTime() / 1000));

  beforeAll(() => {
    writeFileSync(path("root.pem"), good.root.pem);
    writeFileSync(path("data"), content);
    writeFileSync(path("sig.p7s"), goodSig);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function openssl(...args: string[]) {
    const r = Bun.spawnSync(["openssl", ...args], { cwd: dir });
    return { code: r.exitCode, stderr: r.stderr.toString() };
  }

  function opensslVerify(sig: string, data: string) {
    // OpenSSL 3.0 has no code-signing purpose; chain, signature and digest are still checked.
    return openssl(
      "cms",
      "-verify",
      "-binary",
      "-inform",
      "DER",
      "-in",
      sig,
      "-content",
      data,
      "-CAfile",
      "root.pem",
      "-purpose",
      "any",
      "-attime",
      attime,
      "-out",
      "/dev/null",
    );
  }

  function opensslSign(out: string, ...extra: string[]) {
    const r = openssl(
      "cms",
      "-sign",
      "-binary",
      "-outform",
      "DER",
      "-signer",
      "real-signer.pem",
      "-inkey",
      "real-signer.key",
      "-certfile",
      "real-intermediate.pem",
      "-in",
      "data",
      "-out",
      out,
      ...extra,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    return new Uint8Array(readFileSync(path(out)));
  }

  test("openssl cms -verify accepts what signDetached produces", () => {
    const r = opensslVerify("sig.p7s", "data");
    expect(r.stderr).toContain("Verification successful");
    expect(r.code).toBe(0);
  });

  test("openssl cms -verify rejects it over tampered content", () => {
    const tampered = content.slice();
    tampered[0] = (tampered[0] ?? 0) ^ 1;
    writeFileSync(path("tampered"), tampered);
    const r = opensslVerify("sig.p7s", "tampered");
    expect(r.stderr).toContain("Verification failure");
    expect(r.code).not.toBe(0);
  });

  test("openssl cms -verify rejects it under another root", async () => {
    const other = await makeCertChain({ now: NOW });
    writeFileSync(path("other-root.pem"), other.root.pem);
    const r = openssl(
      "cms",
      "-verify",
      "-binary",
      "-inform",
      "DER",
      "-in",
      "sig.p7s",
      "-content",
      "data",
      "-CAfile",
      "other-root.pem",
      "-purpose",
      "any",
      "-attime",
      attime,
      "-out",
      "/dev/null",
    );
    expect(r.code).not.toBe(0);
  });

  // openssl stamps signingTime from the real clock, so these signatures use a chain centred on
  // the real time and are verified at the real time.
  test("verifyDetached accepts openssl cms -sign -md sha384 (with and without S/MIME capabilities)", async () => {
    const real = await makeCertChain();
    const pems = await real.pems();
    writeFileSync(path("real-signer.pem"), pems.signer);
    writeFileSync(path("real-signer.key"), pems.signerKey, { mode: 0o600 });
    writeFileSync(path("real-intermediate.pem"), pems.intermediate);
    for (const [out, extra] of [
      ["ossl.p7s", []],
      ["ossl-nosmimecap.p7s", ["-nosmimecap"]],
      ["ossl-keyid.p7s", ["-keyid"]],
    ] as const) {
      const p7s = opensslSign(out, "-md", "sha384", ...extra);
      const v = await verifyDetached(content, p7s, real.trust, { now: new Date(), file: FILE });
      expect(v.signerSha256).toBe(sha256Hex(real.signer.der));
      expect(Math.abs(v.signingTime.getTime() - Date.now())).toBeLessThan(MINUTE);
      const tampered = content.slice(1);
      expect(
        await rejection(verifyDetached(tampered, p7s, real.trust, { now: new Date(), file: FILE })),
      ).toBe("SIG_DIGEST_MISMATCH");
    }
    const sha256Sig = opensslSign("ossl-256.p7s", "-md", "sha256");
    expect(
      await rejection(verifyDetached(content, sha256Sig, real.trust, { now: new Date(), file: FILE })),
    ).toBe("SIG_WEAK_ALGORITHM");
    const noAttrs = opensslSign("ossl-noattr.p7s", "-md", "sha384", "-noattr");
    expect(
      await rejection(verifyDetached(content, noAttrs, real.trust, { now: new Date(), file: FILE })),
    ).toBe("SIG_NO_SIGNING_TIME");
    const attached = opensslSign("ossl-attached.p7s", "-md", "sha384", "-nodetach");
    expect(
      await rejection(verifyDetached(content, attached, real.trust, { now: new Date(), file: FILE })),
    ).toBe("SIG_MALFORMED");
  });
});
