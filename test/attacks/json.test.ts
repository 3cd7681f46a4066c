/**
 * One JSON, one meaning (R8 for manifest.json, R1 for index.json; see
 * docs/update-protocol.md): validly signed documents whose bytes can be read
 * two ways — a key given twice (JSON.parse keeps the last, other readers the
 * first), `__proto__`/`constructor` keys, a leading byte order mark that one
 * decoder drops and another keeps — and file names that display differently
 * from what they are (C1 controls, bidi overrides). All are refused before
 * anything is staged.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { signDetached } from "../../core/crypto/cms-sign.ts";
import { sha384Hex } from "../../core/crypto/digest.ts";
import { serializeManifest } from "../../core/package/manifest.ts";
import { INDEX_PATH, INDEX_SIG_PATH } from "../../core/repo/index-format.ts";
import { assemble, nextIndex, publishRaw, putPackage, replaceFile, splitPackage } from "./craft.ts";
import { expectRejected, GROUP, installGood, type Scene, TYPE } from "./harness.ts";

let scene: Scene | undefined;
afterEach(async () => {
  await scene?.cleanup();
  scene = undefined;
});

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A genuine v2 whose manifest text is rewritten by `edit`, re-signed by the vendor and published. */
async function offerManifest(s: Scene, edit: (text: string) => Uint8Array) {
  const parts = splitPackage(await s.vendor.pack(TYPE, 2, { "data.txt": "good v2" }));
  parts.manifest = edit(dec.decode(parts.manifest));
  parts.signature = await signDetached(parts.manifest, s.vendor.keys);
  return publishRaw(s.vendor.repo, GROUP, s.vendor.keys, { type: TYPE, version: 2, bytes: assemble(parts) });
}

describe("manifest.json (R8)", () => {
  test("a key given twice (type: Other, then TestText) → PKG_MANIFEST_INVALID", async () => {
    scene = await installGood();
    const entry = await offerManifest(scene, (t) => enc.encode(t.replace("{", '{\n  "type": "Other",')));
    const report = await expectRejected(scene, {
      code: "PKG_MANIFEST_INVALID",
      file: entry.path,
      type: TYPE,
    });
    expect(report.rejected[0]?.reason).toContain('duplicate key "type"');
  });

  test("a duplicate spelled with an escape (\\u0076ersion) is the same key → PKG_MANIFEST_INVALID", async () => {
    scene = await installGood();
    const entry = await offerManifest(scene, (t) => enc.encode(t.replace("{", '{\n  "\\u0076ersion": 9,')));
    const report = await expectRejected(scene, {
      code: "PKG_MANIFEST_INVALID",
      file: entry.path,
      type: TYPE,
    });
    expect(report.rejected[0]?.reason).toContain('duplicate key "version"');
  });

  test.each(["__proto__", "constructor"])("a %s key → PKG_MANIFEST_INVALID", async (key) => {
    scene = await installGood();
    const entry = await offerManifest(scene, (t) =>
      enc.encode(t.replace("{", `{\n  "${key}": { "version": 9 },`)),
    );
    const report = await expectRejected(scene, {
      code: "PKG_MANIFEST_INVALID",
      file: entry.path,
      type: TYPE,
    });
    expect(report.rejected[0]?.reason).toContain(`forbidden key "${key}"`);
  });

  test("a leading byte order mark → PKG_MANIFEST_INVALID at verification, not a store failure every cycle", async () => {
    scene = await installGood();
    const entry = await offerManifest(scene, (t) => new Uint8Array([0xef, 0xbb, 0xbf, ...enc.encode(t)]));
    const report = await expectRejected(scene, {
      code: "PKG_MANIFEST_INVALID",
      file: entry.path,
      type: TYPE,
    });
    expect(report.rejected[0]?.reason).toContain("byte order mark");
  });
});

describe("index.json (R1)", () => {
  test("the content map names TestText twice (v1, then v2) → IDX_INVALID", async () => {
    scene = await installGood();
    const v2 = putPackage(scene.vendor.repo, {
      type: TYPE,
      version: 2,
      bytes: await scene.vendor.pack(TYPE, 2, { "data.txt": "second key wins" }),
    });
    const index = nextIndex(scene.vendor.repo, GROUP);
    const v1 = JSON.stringify(index.content[TYPE]);
    const text = JSON.stringify(index).replace(
      `"${TYPE}":${v1}`,
      `"${TYPE}":${v1},"${TYPE}":${JSON.stringify(v2)}`,
    );
    expect(text).toContain(`"${TYPE}":${JSON.stringify(v2)}`);
    const bytes = enc.encode(text);
    replaceFile(join(scene.vendor.repo, INDEX_SIG_PATH(GROUP)), await signDetached(bytes, scene.vendor.keys));
    replaceFile(join(scene.vendor.repo, INDEX_PATH(GROUP)), bytes);
    const report = await expectRejected(scene, { code: "IDX_INVALID", file: INDEX_PATH(GROUP) });
    expect(report.rejected[0]?.reason).toContain(`duplicate key "${TYPE}"`);
  });
});

describe("file names (R8)", () => {
  test.each([
    ["a right-to-left override (U+202E)", "evil\u202etxt.exe"],
    ["a first-strong isolate (U+2068)", "a\u2068b.txt"],
    ["a C1 control (U+0085 NEL)", "line\u0085break.txt"],
    ["a C1 control (U+009B CSI)", "esc\u009b31m.txt"],
  ])("%s in a listed, signed file name → PKG_TAR_BAD_PATH", async (_what, name) => {
    scene = await installGood();
    const data = enc.encode("good v2");
    // The manifest lists the file honestly and is validly signed: only the name itself is wrong.
    const manifest = serializeManifest({
      schema: 1,
      type: TYPE,
      version: 2,
      created: new Date().toISOString(),
      files: [{ path: name, size: data.length, sha384: sha384Hex(data) }],
    } as Parameters<typeof serializeManifest>[0]);
    const bytes = assemble({
      manifest,
      signature: await signDetached(manifest, scene.vendor.keys),
      payload: [{ path: `payload/${name}`, data }],
    });
    const entry = await publishRaw(scene.vendor.repo, GROUP, scene.vendor.keys, {
      type: TYPE,
      version: 2,
      bytes,
    });
    await expectRejected(scene, { code: "PKG_TAR_BAD_PATH", file: entry.path, type: TYPE });
  });
});
