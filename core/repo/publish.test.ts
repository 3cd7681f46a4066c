import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { verifyDetached } from "../crypto/cms-verify.ts";
import { isOutpostError, SignatureError, UpdateError } from "../errors.ts";
import { makePackage, makeSigner, TEST_NOW, type TestPackage, type TestSigner } from "../store/testkit.ts";
import { INDEX_PATH, INDEX_SIG_PATH, parseIndex, type RepoIndex } from "./index-format.ts";
import { publish, readRepoIndex, removeType, resign } from "./publish.ts";

let base: string;
let signer: TestSigner;
let other: TestSigner;
let a1: TestPackage;
let a2: TestPackage;
let a2b: TestPackage;
let b7: TestPackage;
let foreign: TestPackage;
let repo: string;
const DAY = 86_400_000;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), "outpost-publish-"));
  signer = await makeSigner(base);
  other = await makeSigner(join(base, "other"));
  a1 = await makePackage(signer, "Alpha_data", 1, { "a.txt": "a1\n" });
  a2 = await makePackage(signer, "Alpha_data", 2, { "a.txt": "a2\n" });
  a2b = await makePackage(signer, "Alpha_data", 2, { "a.txt": "a2 rebuilt\n" });
  b7 = await makePackage(signer, "Beta", 7, { "b.json": "{}" });
  foreign = await makePackage(other, "Alpha_data", 3, { "a.txt": "not ours\n" });
}, 30_000);

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

beforeEach(() => {
  repo = mkdtempSync(join(base, "repo-"));
});

function at(days: number): Date {
  return new Date(TEST_NOW.getTime() + days * DAY);
}

function put(
  p: TestPackage,
  extra: { now?: Date; allowDowngrade?: boolean; group?: string } = {},
): Promise<RepoIndex> {
  return publish({
    repo,
    group: "stable",
    keys: signer.keysDir,
    packageBytes: p.bytes,
    now: TEST_NOW,
    ...extra,
  });
}

async function verifiedIndex(group = "stable", now = TEST_NOW): Promise<RepoIndex> {
  const json = new Uint8Array(readFileSync(join(repo, INDEX_PATH(group))));
  const p7s = new Uint8Array(readFileSync(join(repo, INDEX_SIG_PATH(group))));
  await verifyDetached(json, p7s, signer.trust, { now, file: "index.json" });
  return parseIndex(json, "index.json");
}

async function rejection(p: Promise<unknown>): Promise<Error & { code: string }> {
  try {
    await p;
  } catch (e) {
    if (isOutpostError(e)) return e;
    throw e;
  }
  throw new Error("expected a rejection");
}

describe("publish", () => {
  test("stores the package content-addressed and writes a signed index", async () => {
    const index = await put(a1);
    const path = `packages/Alpha_data/Alpha_data-1-${a1.sha384.slice(0, 16)}.tar`;
    expect(index).toEqual({
      schema: 1,
      group: "stable",
      serial: 1,
      issued: TEST_NOW.toISOString(),
      expires: at(7).toISOString(),
      content: { Alpha_data: { version: 1, path, size: a1.bytes.byteLength, sha384: a1.sha384 } },
    });
    expect(new Uint8Array(readFileSync(join(repo, path)))).toEqual(new Uint8Array(a1.bytes));
    expect(await verifiedIndex()).toEqual(index);
    expect(readRepoIndex(repo, "stable")).toEqual(index);
    // No temp or lock files are left beside the index.
    expect(readdirSync(join(repo, "groups/stable")).sort()).toEqual(["index.json", "index.p7s"]);
  });

  test("each publish increments the serial and keeps other types", async () => {
    await put(a1);
    const second = await put(a2, { now: at(1) });
    expect(second.serial).toBe(2);
    expect(second.content.Alpha_data?.version).toBe(2);
    const third = await put(b7, { now: at(2) });
    expect(third.serial).toBe(3);
    expect(Object.keys(third.content)).toEqual(["Alpha_data", "Beta"]);
    expect(third.content.Alpha_data).toEqual(second.content.Alpha_data!);
    expect(await verifiedIndex("stable", at(2))).toEqual(third);
    // Agents mid-download of the old package must still find it.
    expect(existsSync(join(repo, index1Path()))).toBe(true);
  });

  test("refuses a downgrade unless allowed, leaving the index untouched", async () => {
    await put(a2);
    const err = await rejection(put(a1, { now: at(1) }));
    expect(err).toBeInstanceOf(UpdateError);
    expect(err.code).toBe("IDX_DOWNGRADE");
    expect((await verifiedIndex()).serial).toBe(1);
    const forced = await put(a1, { now: at(1), allowDowngrade: true });
    expect(forced.serial).toBe(2);
    expect(forced.content.Alpha_data?.version).toBe(1);
  });

  test("refuses other bytes under an already published version; the same bytes re-sign", async () => {
    await put(a2);
    expect((await rejection(put(a2b))).code).toBe("IDX_VERSION_EXISTS");
    const again = await put(a2, { now: at(1) });
    expect(again.serial).toBe(2);
  });

  test("refuses a package that does not chain to the key directory's root", async () => {
    const err = await rejection(put(foreign));
    expect(err).toBeInstanceOf(SignatureError);
    expect(existsSync(join(repo, INDEX_PATH("stable")))).toBe(false);
    expect(existsSync(join(repo, "packages"))).toBe(false);
  });

  test("groups are independent", async () => {
    await put(a1);
    const beta = await put(a2, { group: "beta" });
    expect(beta.serial).toBe(1);
    expect(beta.group).toBe("beta");
    expect((await verifiedIndex("stable")).content.Alpha_data?.version).toBe(1);
    expect((await rejection(put(a1, { group: "Bad/Group" }))).code).toBe("IDX_BAD_GROUP");
  });

  test("reads a package from a file and honours expiresInDays", async () => {
    const file = join(repo, "..", "a1.tar");
    writeFileSync(file, a1.bytes);
    const index = await publish({
      repo,
      group: "stable",
      keys: signer.keysDir,
      packageFile: file,
      now: TEST_NOW,
      expiresInDays: 2,
    });
    expect(index.expires).toBe(at(2).toISOString());
    const bad = publish({
      repo,
      group: "stable",
      keys: signer.keysDir,
      now: TEST_NOW,
      expiresInDays: 0,
      packageFile: file,
    });
    expect((await rejection(bad)).code).toBe("IDX_BAD_ARGS");
  });

  test("the index signature is a real CMS that openssl verifies", async () => {
    await put(a1);
    const proc = Bun.spawnSync([
      "openssl",
      "cms",
      "-verify",
      "-binary",
      "-inform",
      "DER",
      "-in",
      join(repo, INDEX_SIG_PATH("stable")),
      "-content",
      join(repo, INDEX_PATH("stable")),
      "-CAfile",
      signer.rootPem,
      "-purpose",
      "any",
      "-attime",
      String(Math.floor(TEST_NOW.getTime() / 1000)),
      "-out",
      "/dev/null",
    ]);
    expect(proc.stderr.toString()).toContain("Verification successful");
    expect(proc.exitCode).toBe(0);
  });

  test("a live publisher's lock is respected; a dead one's is taken over", async () => {
    mkdirSync(join(repo, "groups/stable"), { recursive: true });
    const lock = join(repo, "groups/stable/.publish.lock");
    writeFileSync(lock, `${process.pid}\n`);
    expect((await rejection(put(a1))).code).toBe("IDX_LOCKED");
    const dead = Bun.spawnSync(["true"]).pid;
    writeFileSync(lock, `${dead}\n`);
    expect((await put(a1)).serial).toBe(1);
    expect(existsSync(lock)).toBe(false);
  });
});

describe("resign and removeType", () => {
  test("resign refreshes issued/expires, bumps the serial, keeps the content", async () => {
    const first = await put(a1);
    const re = await resign({ repo, group: "stable", keys: signer.keysDir, now: at(6) });
    expect(re).toEqual({ ...first, serial: 2, issued: at(6).toISOString(), expires: at(13).toISOString() });
    expect(await verifiedIndex("stable", at(6))).toEqual(re);
  });

  test("resign of a group without an index is IDX_NOT_FOUND", async () => {
    const err = await rejection(resign({ repo, group: "stable", keys: signer.keysDir, now: TEST_NOW }));
    expect(err.code).toBe("IDX_NOT_FOUND");
  });

  test("removeType drops one type and re-signs", async () => {
    await put(a1);
    await put(b7);
    const idx = await removeType({
      repo,
      group: "stable",
      keys: signer.keysDir,
      type: "Alpha_data",
      now: at(1),
    });
    expect(idx.serial).toBe(3);
    expect(Object.keys(idx.content)).toEqual(["Beta"]);
    expect(await verifiedIndex("stable", at(1))).toEqual(idx);
    const err = await rejection(
      removeType({ repo, group: "stable", keys: signer.keysDir, type: "Alpha_data" }),
    );
    expect(err.code).toBe("IDX_UNKNOWN_TYPE");
  });
});

function index1Path(): string {
  return `packages/Alpha_data/Alpha_data-1-${a1.sha384.slice(0, 16)}.tar`;
}
