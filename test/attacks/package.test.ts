/**
 * Attacks inside the package container (R8): the index pins these exact
 * bytes (size and SHA-384 match), and the manifest and its signature are
 * genuine, so the tar reader and the payload checks are the last line.
 * Container attacks also check nothing was written outside the state dir.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { signDetached } from "../../core/crypto/cms-sign.ts";
import { MAX_MANIFEST_BYTES } from "../../core/package/manifest.ts";
import { assemble, publishRaw, type RawTarEntry, splitPackage } from "./craft.ts";
import { expectRejected, GROUP, installGood, type Scene, TYPE } from "./harness.ts";

let scene: Scene | undefined;
afterEach(async () => {
  await scene?.cleanup();
  scene = undefined;
});

/** A genuine signed v2 with `extra` tar entries appended after its payload, published with a matching index entry. */
async function offerWithExtra(s: Scene, extra: RawTarEntry[]) {
  const parts = splitPackage(await s.vendor.pack(TYPE, 2, { "data.txt": "good v2" }));
  return publishRaw(s.vendor.repo, GROUP, s.vendor.keys, {
    type: TYPE,
    version: 2,
    bytes: assemble(parts, extra),
  });
}

/**
 * Evidence an entry escaped or was materialised: any path under the state dir named `name`
 * (an evil entry's name is unique), and any symlink or special file in the content store,
 * which only ever holds regular files and directories.
 */
function findEvidence(stateDir: string, name: string): string[] {
  const hits: string[] = [];
  const walk = (dir: string, inStore: boolean) => {
    for (const entry of readdirSync(dir)) {
      const full = join(dir, entry);
      const st = lstatSync(full);
      const special = st.isSymbolicLink() || !(st.isFile() || st.isDirectory());
      if (entry === name || (inStore && special)) hits.push(full);
      if (st.isDirectory()) walk(full, inStore || full === join(stateDir, "content"));
    }
  };
  walk(stateDir, false);
  return hits;
}

const unique = (what: string) => `outpost-${what}-${process.pid}-${Math.random().toString(36).slice(2)}`;

describe("payload integrity (R8)", () => {
  test("payload byte changed, original signed manifest kept → PKG_FILE_DIGEST_MISMATCH", async () => {
    scene = await installGood();
    const parts = splitPackage(await scene.vendor.pack(TYPE, 2, { "data.txt": "good v2" }));
    const file = parts.payload[0]!;
    file.data[0]! ^= 0x01; // "good v2" → "food v2": same size, other digest
    const entry = await publishRaw(scene.vendor.repo, GROUP, scene.vendor.keys, {
      type: TYPE,
      version: 2,
      bytes: assemble(parts),
    });
    const report = await expectRejected(scene, {
      code: "PKG_FILE_DIGEST_MISMATCH",
      file: entry.path,
      type: TYPE,
    });
    expect(report.rejected[0]?.reason).toContain("payload/data.txt");
  });

  test("manifest over 1 MiB (validly signed) → PKG_MANIFEST_TOO_LARGE", async () => {
    scene = await installGood();
    const parts = splitPackage(await scene.vendor.pack(TYPE, 2, { "data.txt": "good v2" }));
    // Trailing whitespace keeps it valid JSON with the same meaning; only its size is wrong.
    const padded = new Uint8Array(MAX_MANIFEST_BYTES + 1).fill(0x20);
    padded.set(parts.manifest);
    parts.manifest = padded;
    parts.signature = await signDetached(padded, scene.vendor.keys);
    const entry = await publishRaw(scene.vendor.repo, GROUP, scene.vendor.keys, {
      type: TYPE,
      version: 2,
      bytes: assemble(parts),
    });
    await expectRejected(scene, { code: "PKG_MANIFEST_TOO_LARGE", file: entry.path, type: TYPE });
  });
});

describe("tar container (R8)", () => {
  test("entry with '..' escaping the payload dir → PKG_TAR_TRAVERSAL, nothing written outside", async () => {
    scene = await installGood();
    const name = unique("traversal");
    // From STATE/content/TestText/staging/<work>/payload, six levels up is the parent of STATE.
    const entry = await offerWithExtra(scene, [
      { name: `payload/../../../../../../${name}`, data: new TextEncoder().encode("pwned") },
    ]);
    await expectRejected(scene, { code: "PKG_TAR_TRAVERSAL", file: entry.path, type: TYPE });
    expect(existsSync(join(dirname(scene.t.stateDir), name))).toBe(false);
    expect(existsSync(join(tmpdir(), name))).toBe(false);
    expect(findEvidence(scene.t.stateDir, name)).toEqual([]);
  });

  test("entry with an absolute path → PKG_TAR_ABSOLUTE_PATH, nothing written there", async () => {
    scene = await installGood();
    const target = join(tmpdir(), unique("absolute"));
    const entry = await offerWithExtra(scene, [{ name: target, data: new TextEncoder().encode("pwned") }]);
    await expectRejected(scene, { code: "PKG_TAR_ABSOLUTE_PATH", file: entry.path, type: TYPE });
    expect(existsSync(target)).toBe(false);
  });

  test("symbolic link in payload/ → PKG_TAR_LINK, no link created", async () => {
    scene = await installGood();
    const name = unique("symlink");
    const entry = await offerWithExtra(scene, [
      { name: `payload/${name}`, typeflag: "2", linkname: "/etc/passwd" },
    ]);
    await expectRejected(scene, { code: "PKG_TAR_LINK", file: entry.path, type: TYPE });
    expect(findEvidence(scene.t.stateDir, name)).toEqual([]);
  });

  test("hard link in payload/ → PKG_TAR_LINK, no link created", async () => {
    scene = await installGood();
    const name = unique("hardlink");
    const entry = await offerWithExtra(scene, [
      { name: `payload/${name}`, typeflag: "1", linkname: "/etc/hosts" },
    ]);
    await expectRejected(scene, { code: "PKG_TAR_LINK", file: entry.path, type: TYPE });
    expect(findEvidence(scene.t.stateDir, name)).toEqual([]);
  });

  test.each([
    ["character device", "3", "PKG_TAR_DEVICE"],
    ["block device", "4", "PKG_TAR_DEVICE"],
    ["fifo", "6", "PKG_TAR_FIFO"],
  ])("%s (typeflag %s) in payload/ → %s, no special file created", async (what, typeflag, code) => {
    scene = await installGood();
    const name = unique(what.replace(" ", "-"));
    const entry = await offerWithExtra(scene, [
      { name: `payload/${name}`, typeflag, devmajor: 1, devminor: 3 },
    ]);
    await expectRejected(scene, { code, file: entry.path, type: TYPE });
    expect(findEvidence(scene.t.stateDir, name)).toEqual([]);
  });

  test("control: the hand-built tar of an untouched package installs (the craft only breaks what it is told to)", async () => {
    scene = await installGood();
    await offerWithExtra(scene, []);
    const report = await scene.t.agent.update();
    expect(report.rejected).toEqual([]);
    expect(report.installed).toEqual([{ type: TYPE, version: 2, previousVersion: 1 }]);
  });
});
