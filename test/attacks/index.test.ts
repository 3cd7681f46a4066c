/**
 * Attacks on the group index and on what it pins (R1–R7, R9–R11): replayed,
 * frozen, foreign or forged indexes, and validly signed packages that are not
 * the ones the index names or that would move the host backwards.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { makeCertChain } from "../../core/crypto/testing.ts";
import { INDEX_PATH } from "../../core/repo/index-format.ts";
import { publish, readRepoIndex } from "../../core/repo/publish.ts";
import { DirTransport } from "../../core/update/transport.ts";
import {
  nextIndex,
  publishRaw,
  putPackage,
  replaceFile,
  restoreIndexPair,
  saveIndexPair,
  writeSignedIndex,
} from "./craft.ts";
import { expectRejected, GROUP, installGood, type Scene, TYPE } from "./harness.ts";

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
const INDEX_FILE = INDEX_PATH(GROUP);

let scene: Scene | undefined;
afterEach(async () => {
  await scene?.cleanup();
  scene = undefined;
});

function listed(s: Scene) {
  const entry = readRepoIndex(s.vendor.repo, GROUP)?.content[TYPE];
  if (!entry) throw new Error("TestText not listed");
  return entry;
}

describe("index (R1–R5)", () => {
  test("older validly signed index replayed (lower serial) → IDX_SERIAL_ROLLBACK", async () => {
    scene = await installGood();
    const old = saveIndexPair(scene.vendor.repo, GROUP);
    await scene.upgrade(2, "good v2");
    restoreIndexPair(scene.vendor.repo, GROUP, old);
    await expectRejected(scene, { code: "IDX_SERIAL_ROLLBACK", file: INDEX_FILE });
  });

  test("a second, different index under an already accepted serial → IDX_SERIAL_REUSED", async () => {
    scene = await installGood();
    const v2 = putPackage(scene.vendor.repo, {
      type: TYPE,
      version: 2,
      bytes: await scene.vendor.pack(TYPE, 2, { "data.txt": "forked v2" }),
    });
    const serial = readRepoIndex(scene.vendor.repo, GROUP)!.serial;
    await writeSignedIndex(
      scene.vendor.repo,
      nextIndex(scene.vendor.repo, GROUP, { [TYPE]: v2 }, { serial }),
      scene.vendor.keys,
    );
    await expectRejected(scene, { code: "IDX_SERIAL_REUSED", file: INDEX_FILE });
  });

  test("index signed with expires in the past → IDX_EXPIRED", async () => {
    scene = await installGood();
    const v2 = putPackage(scene.vendor.repo, {
      type: TYPE,
      version: 2,
      bytes: await scene.vendor.pack(TYPE, 2, { "data.txt": "stale v2" }),
    });
    const now = Date.now();
    const index = nextIndex(
      scene.vendor.repo,
      GROUP,
      { [TYPE]: v2 },
      {
        issued: new Date(now - 8 * DAY),
        expires: new Date(now - HOUR),
      },
    );
    await writeSignedIndex(scene.vendor.repo, index, scene.vendor.keys);
    await expectRejected(scene, { code: "IDX_EXPIRED", file: INDEX_FILE });
  });

  test("freeze: the mirror keeps serving the same index (304) until it expires → IDX_EXPIRED", async () => {
    let clock = Date.now();
    const indexAnswers: number[] = [];
    scene = await installGood({
      now: () => new Date(clock),
      transport: (vendor) => {
        const inner = new DirTransport(vendor.repo);
        return {
          describe: inner.describe,
          async get(path, opts) {
            const res = await inner.get(path, opts);
            if (path === INDEX_FILE) indexAnswers.push(res.status);
            return res;
          },
        };
      },
    });
    clock += 8 * DAY;
    await expectRejected(scene, { code: "IDX_EXPIRED", file: INDEX_FILE });
    // The expiry was caught on the cached copy the mirror confirmed, not on a fresh download.
    expect(indexAnswers).toEqual([200, 304]);
  });

  test("validly signed index of another group → IDX_WRONG_GROUP", async () => {
    scene = await installGood();
    await scene.vendor.release(TYPE, 2, { "data.txt": "canary v2" }, { group: "public-2" });
    restoreIndexPair(scene.vendor.repo, GROUP, saveIndexPair(scene.vendor.repo, "public-2"));
    await expectRejected(scene, { code: "IDX_WRONG_GROUP", file: INDEX_FILE });
  });

  test("index signed by a key that does not chain to the trusted root → SIG_UNTRUSTED_CHAIN", async () => {
    scene = await installGood();
    const v2 = putPackage(scene.vendor.repo, {
      type: TYPE,
      version: 2,
      bytes: await scene.vendor.pack(TYPE, 2, { "data.txt": "good v2" }),
    });
    const other = await makeCertChain({ name: "Outpost" });
    await writeSignedIndex(
      scene.vendor.repo,
      nextIndex(scene.vendor.repo, GROUP, { [TYPE]: v2 }),
      other.signingKeys,
    );
    await expectRejected(scene, { code: "SIG_UNTRUSTED_CHAIN", file: INDEX_FILE });
  });
});

describe("what the index pins (R6, R7, R9–R11)", () => {
  test("mix-and-match: another validly signed package of the same type and size → UPD_HASH_MISMATCH", async () => {
    scene = await installGood();
    await scene.vendor.release(TYPE, 2, { "data.txt": "good v2" });
    const entry = listed(scene);
    // ECDSA signatures vary in DER length; tar padding makes equal sizes the rule, but make sure.
    let swap: Uint8Array;
    do swap = await scene.vendor.pack(TYPE, 2, { "data.txt": "evil v2" });
    while (swap.length !== entry.size);
    replaceFile(join(scene.vendor.repo, entry.path), swap);
    await expectRejected(scene, { code: "UPD_HASH_MISMATCH", file: entry.path, type: TYPE });
  });

  test("package swapped for a smaller validly signed one → UPD_SIZE_MISMATCH", async () => {
    scene = await installGood();
    await scene.vendor.release(TYPE, 2, { "data.txt": `good v2 ${"=".repeat(4000)}` });
    const entry = listed(scene);
    const swap = await scene.vendor.pack(TYPE, 2, { "data.txt": "evil v2" });
    expect(swap.length).toBeLessThan(entry.size);
    replaceFile(join(scene.vendor.repo, entry.path), swap);
    await expectRejected(scene, { code: "UPD_SIZE_MISMATCH", file: entry.path, type: TYPE });
  });

  test("index entry for TestText pointing at a validly signed package of another type → PKG_WRONG_TYPE", async () => {
    scene = await installGood();
    const other = await scene.vendor.pack("Other", 2, { "data.txt": "other type" });
    const entry = await publishRaw(scene.vendor.repo, GROUP, scene.vendor.keys, {
      type: TYPE,
      version: 2,
      bytes: other,
    });
    await expectRejected(scene, { code: "PKG_WRONG_TYPE", file: entry.path, type: TYPE });
  });

  test("index promises version 3, the signed manifest says 2 → UPD_VERSION_MISMATCH", async () => {
    scene = await installGood();
    const bytes = await scene.vendor.pack(TYPE, 2, { "data.txt": "good v2" });
    const entry = await publishRaw(scene.vendor.repo, GROUP, scene.vendor.keys, {
      type: TYPE,
      version: 3,
      bytes,
    });
    await expectRejected(scene, { code: "UPD_VERSION_MISMATCH", file: entry.path, type: TYPE });
  });

  test("downgrade: the index offers a lower version than the installed one → UPD_DOWNGRADE", async () => {
    scene = await installGood();
    const v1 = listed(scene);
    await scene.upgrade(2, "good v2");
    await publish({
      repo: scene.vendor.repo,
      group: GROUP,
      keys: scene.vendor.keysDir,
      packageFile: join(scene.vendor.repo, v1.path),
      allowDowngrade: true,
    });
    await expectRejected(scene, { code: "UPD_DOWNGRADE", file: v1.path, type: TYPE });
  });

  test("replay: a higher version signed before the installed one → UPD_REPLAY_OLDER_SIGNATURE", async () => {
    scene = await installGood();
    // v2 was signed two hours before v1 (e.g. held back and replayed, or a stale CDN object).
    await scene.vendor.release(
      TYPE,
      2,
      { "data.txt": "held-back v2" },
      { now: new Date(Date.now() - 2 * HOUR) },
    );
    await expectRejected(scene, { code: "UPD_REPLAY_OLDER_SIGNATURE", file: listed(scene).path, type: TYPE });
  });
});
