import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TrustStore } from "../crypto/cms.ts";
import { signDetached } from "../crypto/cms-sign.ts";
import { sha384Hex } from "../crypto/digest.ts";
import { initKeys, KEY_FILES, loadSigningKeys, type SigningKeys } from "../crypto/keys.ts";
import { PackageError, SignatureError } from "../errors.ts";
import { MAX_MANIFEST_BYTES, type Manifest, serializeManifest } from "./manifest.ts";
import { checkPayload, MAX_SIGNATURE_BYTES, openPackage, readPackage } from "./open.ts";
import { readTar, type TarInput, writeTar } from "./tar.ts";

const T0 = new Date("2026-03-01T00:00:00Z");
const SIGNED_AT = new Date("2026-03-01T01:00:00Z");
const NOW = new Date("2026-03-01T02:00:00Z");
const enc = new TextEncoder();
const text = (s: string) => enc.encode(s);

const dir = mkdtempSync(join(tmpdir(), "outpost-open-"));
let keys: SigningKeys;
let otherKeys: SigningKeys;
let trust: TrustStore;

beforeAll(async () => {
  await initKeys(join(dir, "vendor"), { now: T0 });
  await initKeys(join(dir, "impostor"), { now: T0 });
  keys = await loadSigningKeys(join(dir, "vendor"));
  otherKeys = await loadSigningKeys(join(dir, "impostor"));
  trust = await TrustStore.load(join(dir, "vendor", KEY_FILES.rootCert));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PAYLOAD: Record<string, string> = { "a.txt": "alpha", "sub/b.bin": "bravo!" };

function manifestFor(files: Record<string, string>, overrides: Partial<Manifest> = {}): Manifest {
  return {
    schema: 1,
    type: "Demo_data",
    version: 3,
    created: SIGNED_AT.toISOString(),
    files: Object.keys(files)
      .sort()
      .map((path) => ({ path, size: text(files[path]!).length, sha384: sha384Hex(text(files[path]!)) })),
    ...overrides,
  };
}

/**
 * Builds a package: `manifest` (or raw `manifestBytes`) signed by `signer`,
 * payload from `files`; `edit` may rewrite the entry list before the tar is written.
 */
async function build(
  opts: {
    files?: Record<string, string>;
    manifest?: Manifest;
    manifestBytes?: Uint8Array;
    signer?: SigningKeys;
    edit?: (entries: TarInput[]) => TarInput[];
  } = {},
): Promise<Uint8Array> {
  const files = opts.files ?? PAYLOAD;
  const manifestBytes = opts.manifestBytes ?? serializeManifest(opts.manifest ?? manifestFor(files));
  const signature = await signDetached(manifestBytes, opts.signer ?? keys, { signingTime: SIGNED_AT });
  const entries: TarInput[] = [
    { path: "manifest.json", data: manifestBytes },
    { path: "manifest.p7s", data: signature },
    ...Object.entries(files).map(([path, content]) => ({ path: `payload/${path}`, data: text(content) })),
  ];
  return writeTar(opts.edit ? opts.edit(entries) : entries);
}

async function rejected(bytes: Uint8Array, code: string, expectedType?: string): Promise<PackageError> {
  const err = await openPackage(bytes, trust, { file: "pkg.tar", now: NOW, expectedType }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PackageError);
  expect((err as PackageError).code).toBe(code);
  expect((err as PackageError).file).toBe("pkg.tar");
  expect((err as PackageError).message).toContain("pkg.tar");
  return err as PackageError;
}

async function signatureRejected(bytes: Uint8Array, expectedType?: string): Promise<SignatureError> {
  const err = await openPackage(bytes, trust, { file: "pkg.tar", now: NOW, expectedType }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SignatureError);
  expect((err as SignatureError).code).toMatch(/^SIG_/);
  expect((err as SignatureError).file).toBe("pkg.tar");
  return err as SignatureError;
}

describe("openPackage accepts", () => {
  test("a valid package and returns the verified content", async () => {
    const bytes = await build();
    const pkg = await openPackage(bytes, trust, { file: "pkg.tar", now: NOW, expectedType: "Demo_data" });
    expect(pkg.manifest).toEqual(manifestFor(PAYLOAD));
    expect(pkg.signingTime.toISOString()).toBe(SIGNED_AT.toISOString());
    expect(pkg.signer.signingTime.getTime()).toBe(SIGNED_AT.getTime());
    expect(pkg.signer.signerSubject).toContain("Content Signer");
    expect(Buffer.from(pkg.manifestBytes).equals(Buffer.from(serializeManifest(manifestFor(PAYLOAD))))).toBe(
      true,
    );
    expect(pkg.signatureBytes.length).toBeGreaterThan(500);
    expect([...pkg.files.keys()]).toEqual(["a.txt", "sub/b.bin"]);
    expect(new TextDecoder().decode(pkg.files.get("sub/b.bin"))).toBe("bravo!");
  });

  test("directory entries for payload/ and directories holding listed files", async () => {
    const bytes = await build({
      edit: (e) => [
        e[0]!,
        e[1]!,
        { path: "payload/", data: new Uint8Array(0) },
        e[2]!,
        { path: "payload/sub/", data: new Uint8Array(0) },
        e[3]!,
      ],
    });
    const pkg = await openPackage(bytes, trust, { file: "pkg.tar", now: NOW });
    expect(pkg.files.size).toBe(2);
  });

  test("an empty payload when the manifest lists no files", async () => {
    const pkg = await openPackage(await build({ files: {} }), trust, { file: "pkg.tar", now: NOW });
    expect(pkg.files.size).toBe(0);
  });
});

describe("openPackage rejects", () => {
  test("PK1: unsafe tar content (PKG_TAR_* propagate)", async () => {
    const bytes = await build();
    // Rename the first payload entry in place (writeTar would refuse to write it); keep its checksum valid.
    const header = readTar(bytes, { file: "pkg.tar" })[2]!.data.byteOffset - 512;
    const name = new Uint8Array(100);
    name.set(text("payload/../../etc/cron.d/evil"));
    bytes.set(name, header);
    fixChecksum(bytes.subarray(header));
    await rejected(bytes, "PKG_TAR_TRAVERSAL");
    const whole = await build();
    await rejected(whole.subarray(0, whole.length - 1024), "PKG_TAR_TRUNCATED");
  });

  test("PK2: manifest.json not first", async () => {
    await rejected(await build({ edit: (e) => [e[1]!, e[0]!, ...e.slice(2)] }), "PKG_LAYOUT");
  });

  test("PK2: manifest.p7s missing or not second", async () => {
    await rejected(await build({ edit: (e) => [e[0]!, ...e.slice(2)] }), "PKG_LAYOUT");
    await rejected(await build({ edit: (e) => [e[0]!, e[2]!, e[1]!, e[3]!] }), "PKG_LAYOUT");
    await rejected(await build({ edit: (e) => [e[0]!] }), "PKG_LAYOUT");
  });

  test("PK2: an entry outside payload/", async () => {
    const err = await rejected(
      await build({ edit: (e) => [...e, { path: "README", data: text("hi") }] }),
      "PKG_LAYOUT",
    );
    expect(err.message).toContain("README");
    await rejected(
      await build({ edit: (e) => [...e, { path: "payloads/x", data: text("hi") }] }),
      "PKG_LAYOUT",
    );
  });

  test("PK2: manifest.json as a directory, or an empty archive", async () => {
    await rejected(writeTar([{ path: "manifest.json/", data: new Uint8Array(0) }]), "PKG_LAYOUT");
    await rejected(writeTar([]), "PKG_LAYOUT");
  });

  test("PK3: manifest.json over 1 MiB", async () => {
    const huge = new Uint8Array(MAX_MANIFEST_BYTES + 1).fill(0x20);
    await rejected(await build({ manifestBytes: huge }), "PKG_MANIFEST_TOO_LARGE");
  });

  test("PK3: a signed but invalid manifest", async () => {
    const bad = { ...manifestFor(PAYLOAD), extra: 1 };
    const err = await rejected(
      await build({ manifestBytes: text(JSON.stringify(bad)) }),
      "PKG_MANIFEST_INVALID",
    );
    expect(err.message).toContain("extra");
    await rejected(await build({ manifestBytes: text("not json") }), "PKG_MANIFEST_INVALID");
  });

  test("PK3: an oversized signature blob", async () => {
    const bytes = await build({
      edit: (e) => [
        e[0]!,
        { path: "manifest.p7s", data: new Uint8Array(MAX_SIGNATURE_BYTES + 1) },
        ...e.slice(2),
      ],
    });
    await rejected(bytes, "PKG_SIGNATURE_TOO_LARGE");
  });

  test("PK4: a manifest changed after signing", async () => {
    const signedBytes = serializeManifest(manifestFor(PAYLOAD));
    const signature = await signDetached(signedBytes, keys, { signingTime: SIGNED_AT });
    const altered = serializeManifest(manifestFor(PAYLOAD, { version: 99 }));
    const bytes = writeTar([
      { path: "manifest.json", data: altered },
      { path: "manifest.p7s", data: signature },
      ...Object.entries(PAYLOAD).map(([p, c]) => ({ path: `payload/${p}`, data: text(c) })),
    ]);
    await signatureRejected(bytes);
  });

  test("PK4: a signature from a key that does not chain to the trusted root", async () => {
    expect((await signatureRejected(await build({ signer: otherKeys }))).code).toBe("SIG_UNTRUSTED_CHAIN");
  });

  test("PK4: garbage in manifest.p7s", async () => {
    await signatureRejected(
      await build({ edit: (e) => [e[0]!, { path: "manifest.p7s", data: text("junk") }, ...e.slice(2)] }),
    );
  });

  test("PK4 before PK5–PK7: nothing in an unverified package is trusted", async () => {
    // wrong type, unlisted file and bad digest, but signed by an impostor: the signature decides
    const bytes = await build({
      signer: otherKeys,
      manifest: manifestFor(PAYLOAD, { type: "Other" }),
      edit: (e) => [
        ...e.slice(0, 3),
        { path: "payload/sub/b.bin", data: text("BRAVO!") },
        { path: "payload/x", data: text("x") },
      ],
    });
    await signatureRejected(bytes, "Demo_data");
  });

  test("PK5: a validly signed package of another type", async () => {
    const err = await rejected(await build(), "PKG_WRONG_TYPE", "Hmpa_data");
    expect(err.message).toContain("Demo_data");
  });

  test("PK6: a listed file missing, or present as a directory", async () => {
    const err = await rejected(await build({ edit: (e) => e.slice(0, 3) }), "PKG_FILE_MISSING");
    expect(err.message).toContain("payload/sub/b.bin");
    await rejected(
      await build({
        edit: (e) => [...e.slice(0, 3), { path: "payload/sub/b.bin/", data: new Uint8Array(0) }],
      }),
      "PKG_FILE_MISSING",
    );
  });

  test("PK6: a file of another size than listed", async () => {
    await rejected(
      await build({ edit: (e) => [...e.slice(0, 3), { path: "payload/sub/b.bin", data: text("bravo") }] }),
      "PKG_FILE_SIZE_MISMATCH",
    );
  });

  test("PK6: a file whose SHA-384 differs (same size)", async () => {
    const err = await rejected(
      await build({ edit: (e) => [...e.slice(0, 3), { path: "payload/sub/b.bin", data: text("BRAVO!") }] }),
      "PKG_FILE_DIGEST_MISMATCH",
    );
    expect(err.details).toEqual({ path: "sub/b.bin" });
  });

  test("PK7: a payload file the manifest does not list", async () => {
    const err = await rejected(
      await build({ edit: (e) => [...e, { path: "payload/zz-extra", data: text("x") }] }),
      "PKG_FILE_UNLISTED",
    );
    expect(err.message).toContain("zz-extra");
  });

  test("PK7: a payload directory holding no listed file", async () => {
    await rejected(
      await build({ edit: (e) => [...e, { path: "payload/empty/", data: new Uint8Array(0) }] }),
      "PKG_FILE_UNLISTED",
    );
  });

  test("PK7 is checked before any digest (no hashing for a malformed payload)", async () => {
    const bytes = await build({
      edit: (e) => [
        ...e.slice(0, 3),
        { path: "payload/sub/b.bin", data: text("BRAVO!") },
        { path: "payload/zz", data: text("x") },
      ],
    });
    await rejected(bytes, "PKG_FILE_UNLISTED");
  });
});

describe("readPackage / checkPayload (unverified view for inspect)", () => {
  test("parse layout and manifest without a trust store, and check digests", async () => {
    const bytes = await build();
    const pkg = readPackage(bytes, { file: "pkg.tar" });
    expect(pkg.manifest.type).toBe("Demo_data");
    expect([...pkg.payload.keys()]).toEqual(["a.txt", "sub/b.bin"]);
    expect([...checkPayload(pkg, "pkg.tar").keys()]).toEqual(["a.txt", "sub/b.bin"]);
  });
});

/** Recomputes a hand-edited header's checksum so only the intended defect remains. */
function fixChecksum(block: Uint8Array): void {
  const h = block.subarray(0, 512);
  h.fill(0x20, 148, 156);
  const sum = h.reduce((a, b) => a + b, 0);
  h.set(text(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
}
