/**
 * The index's `previous` entry (what the group ran before, for agents kept
 * one version behind): published automatically, overridable by a release
 * abort, and validated by the agent's parser.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isOutpostError } from "../errors.ts";
import { makePackage, makeSigner, TEST_NOW, type TestPackage, type TestSigner } from "../store/testkit.ts";
import { INDEX_PATH, parseIndex, serializeIndex } from "./index-format.ts";
import { publish, readRepoIndex, resign } from "./publish.ts";

let base: string;
let signer: TestSigner;
let v1: TestPackage;
let v2: TestPackage;
let v3: TestPackage;
let repo: string;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), "outpost-previous-"));
  signer = await makeSigner(base);
  v1 = await makePackage(signer, "Alpha_data", 1, { "a.txt": "a1\n" });
  v2 = await makePackage(signer, "Alpha_data", 2, { "a.txt": "a2\n" });
  v3 = await makePackage(signer, "Alpha_data", 3, { "a.txt": "a3\n" });
}, 30_000);

afterAll(() => rmSync(base, { recursive: true, force: true }));

beforeEach(() => {
  repo = mkdtempSync(join(base, "repo-"));
});

const put = (
  p: TestPackage,
  extra: { previous?: null | { version: number; path: string; size: number; sha384: string } } = {},
) => publish({ repo, group: "stable", keys: signer.keysDir, packageBytes: p.bytes, now: TEST_NOW, ...extra });

describe("previous (N-1) entries", () => {
  test("the first publish has none; each newer version carries the one it replaced, without its history", async () => {
    const first = await put(v1);
    expect(first.content.Alpha_data?.previous).toBeUndefined();
    const second = await put(v2);
    const { previous: _none, ...v1Entry } = first.content.Alpha_data!;
    expect(second.content.Alpha_data?.previous).toEqual(v1Entry);
    const third = await put(v3);
    expect(third.content.Alpha_data?.previous?.version).toBe(2);
    expect(third.content.Alpha_data?.previous).not.toHaveProperty("previous");
  });

  test("re-publishing the same package keeps its previous", async () => {
    await put(v1);
    await put(v2);
    const again = await put(v2);
    expect(again.content.Alpha_data?.previous?.version).toBe(1);
  });

  test("an explicit previous replaces the automatic one; null offers none", async () => {
    const first = await put(v1);
    await put(v2);
    const { previous: _p, ...v1Entry } = first.content.Alpha_data!;
    const withExplicit = await put(v3, { previous: v1Entry });
    expect(withExplicit.content.Alpha_data?.previous?.version).toBe(1);
    const repoAgain = mkdtempSync(join(base, "repo-"));
    repo = repoAgain;
    await put(v1);
    const none = await put(v2, { previous: null });
    expect(none.content.Alpha_data).not.toHaveProperty("previous");
  });

  test("a previous that is not older than the new version is refused before anything is signed", async () => {
    await put(v2);
    const listed = readRepoIndex(repo, "stable")!.content.Alpha_data!;
    try {
      await put(v2, { previous: { ...listed } });
      throw new Error("expected a rejection");
    } catch (e) {
      expect(isOutpostError(e) && e.code).toBe("IDX_BAD_PREVIOUS");
    }
    expect(readRepoIndex(repo, "stable")!.serial).toBe(1);
  });

  test("the agent's parser refuses a previous that is not older, or that is itself malformed", async () => {
    await put(v1);
    const index = await put(v2);
    const entry = index.content.Alpha_data!;
    const bad = {
      ...index,
      content: { Alpha_data: { ...entry, previous: { ...entry.previous!, version: 2 } } },
    };
    expect(() => parseIndex(serializeIndex(bad), "index.json")).toThrow(/previous\.version/);
    const escaping = {
      ...index,
      content: { Alpha_data: { ...entry, previous: { ...entry.previous!, path: "../etc/passwd" } } },
    };
    expect(() => parseIndex(serializeIndex(escaping), "index.json")).toThrow(/previous\.path/);
    const extra = {
      ...index,
      content: { Alpha_data: { ...entry, previous: { ...entry.previous!, previous: entry.previous } } },
    };
    expect(() => parseIndex(new TextEncoder().encode(JSON.stringify(extra)), "index.json")).toThrow(
      /IDX_INVALID|index invalid/,
    );
  });

  test("back-to-back publishes of a same-sized index never share a size+mtime-second validator (nginx ETag)", async () => {
    await put(v1);
    const file = join(repo, INDEX_PATH("stable"));
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const st = statSync(file);
      seen.add(`${st.size}-${Math.floor(st.mtimeMs / 1000)}`);
      await resign({ repo, group: "stable", keys: signer.keysDir, now: TEST_NOW });
    }
    const st = statSync(file);
    seen.add(`${st.size}-${Math.floor(st.mtimeMs / 1000)}`);
    expect(seen.size).toBe(4);
  });
});
