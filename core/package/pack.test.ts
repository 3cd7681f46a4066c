import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TrustStore } from "../crypto/cms.ts";
import { sha384Hex } from "../crypto/digest.ts";
import { initKeys, KEY_FILES, loadSigningKeys, type SigningKeys } from "../crypto/keys.ts";
import { PackageError } from "../errors.ts";
import { openPackage } from "./open.ts";
import { packDirectory } from "./pack.ts";
import { readTar } from "./tar.ts";

const T0 = new Date("2026-03-01T00:00:00Z");
const PACKED_AT = new Date("2026-03-01T01:00:00.250Z");
const NOW = new Date("2026-03-01T02:00:00Z");

const root = mkdtempSync(join(tmpdir(), "outpost-pack-"));
let keys: SigningKeys;
let trust: TrustStore;
let n = 0;

beforeAll(async () => {
  await initKeys(join(root, "keys"), { now: T0 });
  keys = await loadSigningKeys(join(root, "keys"));
  trust = await TrustStore.load(join(root, "keys", KEY_FILES.rootCert));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function tree(files: Record<string, string>): string {
  const dir = join(root, `src${n++}`);
  mkdirSync(dir);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

async function packRejected(
  dir: string,
  code: string,
  over: { type?: string; version?: number } = {},
): Promise<PackageError> {
  const err = await packDirectory({ type: "Demo_data", version: 1, keys, dir, now: PACKED_AT, ...over }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PackageError);
  expect((err as PackageError).code).toBe(code);
  return err as PackageError;
}

describe("packDirectory", () => {
  const files = { "z.txt": "zulu", "B.txt": "upper", "a/é.txt": "accent", "a/b/c.bin": "deep", "a.txt": "" };

  test("writes manifest.json, manifest.p7s, then payload files in byte order, and openPackage accepts it", async () => {
    const bytes = await packDirectory({
      type: "Demo_data",
      version: 5,
      keys,
      dir: tree(files),
      now: PACKED_AT,
    });
    const entries = readTar(bytes, { file: "p.tar" });
    // UTF-8 byte order: "B" < "a" < "a.txt" < "a/…" ('.' 0x2e < '/' 0x2f) < "z"
    expect(entries.map((e) => e.path)).toEqual([
      "manifest.json",
      "manifest.p7s",
      "payload/B.txt",
      "payload/a.txt",
      "payload/a/b/c.bin",
      "payload/a/é.txt",
      "payload/z.txt",
    ]);
    expect(entries.every((e) => e.mode === 0o644 && e.type === "file")).toBe(true);

    const pkg = await openPackage(bytes, trust, { file: "p.tar", now: NOW, expectedType: "Demo_data" });
    expect(pkg.manifest.version).toBe(5);
    expect(pkg.manifest.created).toBe(PACKED_AT.toISOString());
    // CMS signingTime has one-second resolution
    expect(pkg.signingTime.toISOString()).toBe("2026-03-01T01:00:00.000Z");
    expect(pkg.manifest.files.map((f) => [f.path, f.size, f.sha384])).toEqual(
      ["B.txt", "a.txt", "a/b/c.bin", "a/é.txt", "z.txt"].map((p) => [
        p,
        Buffer.byteLength(files[p as keyof typeof files]),
        sha384Hex(new TextEncoder().encode(files[p as keyof typeof files])),
      ]),
    );
  });

  test("is deterministic apart from the (randomised) ECDSA signature", async () => {
    const dir = tree(files);
    const a = readTar(await packDirectory({ type: "Demo_data", version: 5, keys, dir, now: PACKED_AT }), {
      file: "a",
    });
    const b = readTar(await packDirectory({ type: "Demo_data", version: 5, keys, dir, now: PACKED_AT }), {
      file: "b",
    });
    const comparable = (entries: typeof a) =>
      entries
        .filter((e) => e.path !== "manifest.p7s")
        .map((e) => [e.path, e.mode, Buffer.from(e.data).toString("hex")]);
    expect(comparable(a)).toEqual(comparable(b));
  });

  test("refuses symlinks inside the directory", async () => {
    const dir = tree({ "real.txt": "r" });
    symlinkSync("/etc/hostname", join(dir, "link"));
    expect((await packRejected(dir, "PKG_PACK_SYMLINK")).file).toBe(join(dir, "link"));
    const dir2 = tree({ "sub/real.txt": "r" });
    symlinkSync(join(dir2, "sub"), join(dir2, "sublink"));
    await packRejected(dir2, "PKG_PACK_SYMLINK");
  });

  test("refuses special files", async () => {
    const dir = tree({ "real.txt": "r" });
    const mk = Bun.spawnSync(["mkfifo", join(dir, "fifo")]);
    expect(mk.exitCode).toBe(0);
    await packRejected(dir, "PKG_PACK_UNSUPPORTED_FILE");
  });

  test("refuses a missing directory or a file as the directory", async () => {
    await packRejected(join(root, "does-not-exist"), "PKG_PACK_NOT_A_DIRECTORY");
    const dir = tree({ "f.txt": "x" });
    await packRejected(join(dir, "f.txt"), "PKG_PACK_NOT_A_DIRECTORY");
  });

  test("refuses names the agent would refuse", async () => {
    await packRejected(tree({ "back\\slash.txt": "x" }), "PKG_PACK_BAD_PATH");
    await packRejected(tree({ README: "1", readme: "2" }), "PKG_MANIFEST_INVALID");
  });

  test("refuses an invalid type or version before signing", async () => {
    const dir = tree({ "f.txt": "x" });
    await packRejected(dir, "PKG_MANIFEST_INVALID", { type: "bad type" });
    await packRejected(dir, "PKG_MANIFEST_INVALID", { version: 0 });
  });
});
