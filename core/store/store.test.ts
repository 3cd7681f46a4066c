import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StoreError } from "../errors.ts";
import { setCrashHook } from "./crashpoints.ts";
import { ContentStore, type InstalledRecord, versionDirName, versionPath } from "./store.ts";
import { makePackage, makeSigner, type TestPackage, type TestSigner } from "./testkit.ts";

const TYPE = "Demo_data";
let base: string;
let signer: TestSigner;
let v1: TestPackage;
let v2: TestPackage;
let v3: TestPackage;
let state: string;
let clock: Date;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), "outpost-store-"));
  signer = await makeSigner(base);
  v1 = await makePackage(signer, TYPE, 1, {
    "rules.txt": "one\n",
    "sub/dir/a.bin": new Uint8Array([0, 1, 2]),
  });
  v2 = await makePackage(signer, TYPE, 2, { "rules.txt": "two\n", "sub/b.bin": new Uint8Array([9, 9]) });
  v3 = await makePackage(signer, TYPE, 3, { "rules.txt": "three\n" });
});

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

beforeEach(() => {
  state = mkdtempSync(join(base, "state-"));
  clock = new Date("2026-03-02T00:00:00.000Z");
});

function newStore(): ContentStore {
  const s = new ContentStore(state, { now: () => clock });
  s.open();
  return s;
}

function install(store: ContentStore, p: TestPackage): InstalledRecord {
  return store.activate(store.stage(p.pkg, p.sha384));
}

function typeDir(...parts: string[]): string {
  return join(state, "content", TYPE, ...parts);
}

function versionDirs(): string[] {
  return readdirSync(typeDir("versions")).sort();
}

function storeError(fn: () => unknown): StoreError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StoreError);
    return e as StoreError;
  }
  throw new Error("expected a StoreError");
}

describe("stage + activate", () => {
  test("installs a version whose files match the signed manifest", () => {
    const store = newStore();
    const rec = install(store, v1);
    expect(rec).toEqual({
      type: TYPE,
      version: 1,
      dir: `versions/${versionDirName(1, v1.sha384)}`,
      sha384: v1.sha384,
      signingTime: v1.pkg.signingTime.toISOString(),
      installedAt: clock.toISOString(),
    });
    expect(new ContentStore(state).installed(TYPE)).toEqual(rec);
    expect(store.lkg(TYPE)).toBeNull();
    expect(store.types()).toEqual([TYPE]);
    const dir = versionPath(store, rec);
    expect(readFileSync(join(dir, "payload/rules.txt"), "utf8")).toBe("one\n");
    expect(new Uint8Array(readFileSync(join(dir, "payload/sub/dir/a.bin")))).toEqual(
      new Uint8Array([0, 1, 2]),
    );
    expect(new Uint8Array(readFileSync(join(dir, "manifest.json")))).toEqual(
      new Uint8Array(v1.pkg.manifestBytes),
    );
    expect(new Uint8Array(readFileSync(join(dir, "manifest.p7s")))).toEqual(
      new Uint8Array(v1.pkg.signatureBytes),
    );
    expect(existsSync(join(dir, ".complete"))).toBe(true);
    expect(store.verifyInstalled(TYPE)).toEqual({
      type: TYPE,
      version: 1,
      dir: rec.dir,
      files: 2,
      ok: true,
      problems: [],
    });
  });

  test("layoutOnly: sizes, missing and extra files are checked; a same-size flip is left to the view's read", () => {
    const store = newStore();
    const rec = install(store, v1);
    const dir = versionPath(store, rec);
    const layout = () => store.verifyInstalled(TYPE, rec, { layoutOnly: true });
    writeFileSync(join(dir, "payload/rules.txt"), "ONE\n");
    expect(layout()?.ok).toBe(true);
    expect(store.verifyInstalled(TYPE)?.problems).toEqual([
      { path: "rules.txt", reason: "SHA-384 does not match the manifest" },
    ]);
    expect(() => store.view(rec).read("rules.txt")).toThrow(/SHA-384 does not match the manifest/);
    writeFileSync(join(dir, "payload/rules.txt"), "one!\n");
    expect(layout()?.problems).toEqual([{ path: "rules.txt", reason: "size 5, manifest says 4" }]);
    writeFileSync(join(dir, "payload/rules.txt"), "one\n");
    writeFileSync(join(dir, "payload/extra.txt"), "x");
    expect(layout()?.problems).toEqual([{ path: "extra.txt", reason: "not in the manifest" }]);
    rmSync(join(dir, "payload/extra.txt"));
    rmSync(join(dir, "payload/sub/dir/a.bin"));
    expect(layout()?.problems).toEqual([{ path: "sub/dir/a.bin", reason: "missing or unreadable" }]);
  });

  test("the previous version becomes last-known-good; older ones are collected", () => {
    const store = newStore();
    const r1 = install(store, v1);
    const r2 = install(store, v2);
    expect(store.installed(TYPE)).toEqual(r2);
    expect(store.lkg(TYPE)).toEqual(r1);
    expect(versionDirs()).toEqual([versionDirName(1, v1.sha384), versionDirName(2, v2.sha384)]);
    const r3 = install(store, v3);
    expect(store.lkg(TYPE)).toEqual(r2);
    expect(store.installed(TYPE)).toEqual(r3);
    expect(versionDirs()).toEqual([versionDirName(2, v2.sha384), versionDirName(3, v3.sha384)]);
    expect(readdirSync(typeDir("staging"))).toEqual([]);
  });

  test("staging is idempotent and activating the active version changes nothing", () => {
    const store = newStore();
    const r1 = install(store, v1);
    const again = store.stage(v1.pkg, v1.sha384);
    expect(again.dir).toBe(r1.dir);
    clock = new Date("2026-03-05T00:00:00.000Z");
    expect(store.activate(again)).toEqual(r1);
    expect(store.lkg(TYPE)).toBeNull();
  });

  test("a damaged copy of the same version is replaced when staged again", () => {
    const store = newStore();
    install(store, v1);
    const staged = store.stage(v2.pkg, v2.sha384);
    const file = join(typeDir(staged.dir), "payload/rules.txt");
    chmodSync(file, 0o644);
    writeFileSync(file, "tampered\n");
    const restaged = store.stage(v2.pkg, v2.sha384);
    expect(readFileSync(file, "utf8")).toBe("two\n");
    store.activate(restaged);
    expect(store.verifyInstalled(TYPE)?.ok).toBe(true);
  });

  test("a staged version survives gc until it is activated or discarded", () => {
    const store = newStore();
    install(store, v1);
    install(store, v2);
    const staged = store.stage(v3.pkg, v3.sha384);
    expect(store.gc(TYPE)).toEqual([]);
    expect(versionDirs()).toContain(versionDirName(3, v3.sha384));
    store.discard(staged);
    expect(versionDirs()).not.toContain(versionDirName(3, v3.sha384));
    expect(store.installed(TYPE)?.version).toBe(2);
  });

  test("refuses a package whose file map disagrees with its manifest", () => {
    const store = newStore();
    const files = new Map(v1.pkg.files);
    files.set("extra.txt", new Uint8Array([1]));
    const err = storeError(() => store.stage({ ...v1.pkg, files }, v1.sha384));
    expect(err.code).toBe("STORE_PAYLOAD_MISMATCH");
    expect(err.file).toBe("extra.txt");
    const short = new Map(v1.pkg.files);
    short.set("rules.txt", new Uint8Array([1]));
    expect(storeError(() => store.stage({ ...v1.pkg, files: short }, v1.sha384)).code).toBe(
      "STORE_PAYLOAD_MISMATCH",
    );
    expect(storeError(() => store.stage(v1.pkg, "abc")).code).toBe("STORE_BAD_DIGEST");
  });

  test("activating something that is not a complete staged version is refused", () => {
    const store = newStore();
    const staged = store.stage(v1.pkg, v1.sha384);
    rmSync(join(typeDir(staged.dir), ".complete"));
    expect(storeError(() => store.activate(staged)).code).toBe("STORE_NOT_STAGED");
    expect(storeError(() => store.activate({ ...staged, dir: "../../etc" })).code).toBe("STORE_BAD_PATH");
    expect(store.installed(TYPE)).toBeNull();
  });
});

describe("rollback and bad versions", () => {
  test("rollback swaps current and last-known-good", () => {
    const store = newStore();
    const r1 = install(store, v1);
    const r2 = install(store, v2);
    clock = new Date("2026-03-03T00:00:00.000Z");
    const back = store.rollback(TYPE);
    expect(back).toEqual({ ...r1, installedAt: clock.toISOString() });
    expect(store.installed(TYPE)).toEqual(back);
    expect(store.lkg(TYPE)).toEqual(r2);
    expect(store.verifyInstalled(TYPE)?.ok).toBe(true);
  });

  test("rollback without a last-known-good is STORE_NO_LKG", () => {
    const store = newStore();
    install(store, v1);
    const err = storeError(() => store.rollback(TYPE));
    expect(err.code).toBe("STORE_NO_LKG");
    expect(err.file).toBe(typeDir("lkg.json"));
    expect(store.installed(TYPE)?.version).toBe(1);
  });

  test("markBad is recorded, survives reopen and blocks activation", () => {
    const store = newStore();
    install(store, v1);
    expect(store.isBad(TYPE, 2)).toBe(false);
    store.markBad(TYPE, 2, "crash loop: 3 restarts in 60s");
    store.markBad(TYPE, 2, "load failed");
    const reopened = newStore();
    expect(reopened.isBad(TYPE, 2)).toBe(true);
    expect(reopened.isBad(TYPE, 1)).toBe(false);
    expect(reopened.badVersions(TYPE)).toEqual([
      { version: 2, reason: "load failed", at: clock.toISOString() },
    ]);
    const staged = reopened.stage(v2.pkg, v2.sha384);
    expect(storeError(() => reopened.activate(staged)).code).toBe("STORE_VERSION_BAD");
    expect(reopened.installed(TYPE)?.version).toBe(1);
  });

  test("a corrupt bad.json is reported, and replaced by the next markBad", () => {
    const store = newStore();
    install(store, v1);
    writeFileSync(typeDir("bad.json"), "{ nope");
    const err = storeError(() => store.isBad(TYPE, 1));
    expect(err.code).toBe("STORE_CORRUPT_STATE");
    expect(err.file).toBe(typeDir("bad.json"));
    store.markBad(TYPE, 1, "failed load");
    expect(store.isBad(TYPE, 1)).toBe(true);
  });
});

describe("corrupt pointers", () => {
  test("a garbage current.json is STORE_CORRUPT_POINTER naming it; lkg stays usable for fallback", () => {
    const store = newStore();
    const r1 = install(store, v1);
    install(store, v2);
    writeFileSync(typeDir("current.json"), "\0\0garbage");
    const reopened = newStore();
    const err = storeError(() => reopened.installed(TYPE));
    expect(err.code).toBe("STORE_CORRUPT_POINTER");
    expect(err.file).toBe(typeDir("current.json"));
    expect(err.message).toContain("current.json");
    // open() must not collect by a pointer it cannot read.
    expect(versionDirs()).toHaveLength(2);
    expect(reopened.lkg(TYPE)).toEqual(r1);
    expect(reopened.rollback(TYPE).version).toBe(1);
    expect(reopened.lkg(TYPE)).toBeNull();
    expect(reopened.verifyInstalled(TYPE)?.ok).toBe(true);
  });

  test("schema violations and inconsistent pointers are corrupt too", () => {
    const store = newStore();
    const r1 = install(store, v1);
    const cases: unknown[] = [
      { ...r1, extra: 1 },
      { ...r1, version: 7 },
      { ...r1, dir: "versions/../../../etc" },
      { ...r1, type: "Other_type" },
      { ...r1, installedAt: "yesterday" },
      [],
    ];
    for (const bad of cases) {
      writeFileSync(typeDir("current.json"), JSON.stringify(bad));
      expect(storeError(() => store.installed(TYPE)).code).toBe("STORE_CORRUPT_POINTER");
    }
  });

  test("a pointer to a missing version directory is STORE_VERSION_MISSING", () => {
    const store = newStore();
    const r1 = install(store, v1);
    rmSync(typeDir(r1.dir), { recursive: true });
    expect(storeError(() => store.installed(TYPE)).code).toBe("STORE_VERSION_MISSING");
  });
});

describe("open() recovery", () => {
  test("removes staging leftovers, incomplete and unreferenced versions, keeps current and lkg", () => {
    const store = newStore();
    const r1 = install(store, v1);
    const r2 = install(store, v2);
    mkdirSync(typeDir("staging/stage-junk/payload"), { recursive: true });
    writeFileSync(typeDir("staging/.current.json.x.tmp"), "{");
    mkdirSync(typeDir("versions/9-0123456789abcdef/payload"), { recursive: true });
    writeFileSync(typeDir("versions/9-0123456789abcdef/manifest.json"), "{}");
    const orphan = typeDir("versions/8-fedcba9876543210");
    mkdirSync(orphan);
    writeFileSync(join(orphan, ".complete"), "");
    const reopened = newStore();
    expect(readdirSync(typeDir("staging"))).toEqual([]);
    expect(versionDirs()).toEqual([r1.dir, r2.dir].map((d) => d.replace("versions/", "")).sort());
    expect(reopened.installed(TYPE)).toEqual(r2);
    expect(reopened.lkg(TYPE)).toEqual(r1);
  });

  test("a clean start leaves the empty staging directory as it is; a file where it belongs is replaced", () => {
    const store = newStore();
    install(store, v1);
    const before = statSync(typeDir("staging"));
    const typeDirBefore = statSync(typeDir("."));
    newStore();
    // Same directory, and the type directory unchanged: no remove, no mkdir, no directory fsync.
    expect(statSync(typeDir("staging")).ino).toBe(before.ino);
    expect(statSync(typeDir(".")).mtimeMs).toBe(typeDirBefore.mtimeMs);
    rmSync(typeDir("staging"), { recursive: true });
    writeFileSync(typeDir("staging"), "not a directory");
    newStore();
    expect(statSync(typeDir("staging")).isDirectory()).toBe(true);
    expect(readdirSync(typeDir("staging"))).toEqual([]);
  });

  test("an empty state directory opens to nothing installed", () => {
    const store = newStore();
    expect(store.types()).toEqual([]);
    expect(store.installed(TYPE)).toBeNull();
    expect(store.verifyInstalled(TYPE)).toBeNull();
    expect(storeError(() => store.installed("../x")).code).toBe("STORE_BAD_TYPE");
  });
});

describe("view", () => {
  test("reads manifest files lazily and refuses anything else", () => {
    const store = newStore();
    const rec = install(store, v1);
    const view = store.view(rec);
    expect(view.type).toBe(TYPE);
    expect(view.version).toBe(1);
    expect(view.signingTime).toBe(rec.signingTime);
    expect([...view.files]).toEqual(["rules.txt", "sub/dir/a.bin"]);
    expect(view.readText("rules.txt")).toBe("one\n");
    expect(view.read("sub/dir/a.bin")).toEqual(new Uint8Array([0, 1, 2]));
    for (const path of ["missing.txt", "../manifest.json", "sub/dir", "/etc/passwd", "payload/rules.txt"]) {
      expect(storeError(() => view.read(path)).code).toBe("STORE_PATH_NOT_IN_MANIFEST");
    }
  });

  test("a staged version can be viewed before activation", () => {
    const store = newStore();
    const staged = store.stage(v2.pkg, v2.sha384);
    expect(store.view(staged).readText("rules.txt")).toBe("two\n");
  });

  test("files altered on disk after install are refused on read and reported by verifyInstalled", () => {
    const store = newStore();
    const rec = install(store, v1);
    const dir = versionPath(store, rec);
    const view = store.view(rec);
    chmodSync(join(dir, "payload/rules.txt"), 0o644);
    writeFileSync(join(dir, "payload/rules.txt"), "ONE\n");
    const err = storeError(() => view.read("rules.txt"));
    expect(err.code).toBe("STORE_FILE_MISMATCH");
    expect(err.file).toBe(join(dir, "payload/rules.txt"));
    rmSync(join(dir, "payload/sub/dir/a.bin"));
    expect(storeError(() => view.read("sub/dir/a.bin")).code).toBe("STORE_FILE_MISSING");
    writeFileSync(join(dir, "payload/implant.so"), "x");
    const report = store.verifyInstalled(TYPE);
    expect(report?.ok).toBe(false);
    expect(report?.problems).toEqual([
      { path: "rules.txt", reason: "SHA-384 does not match the manifest" },
      { path: "sub/dir/a.bin", reason: "missing or unreadable" },
      { path: "implant.so", reason: "not in the manifest" },
    ]);
    // Right bytes behind a symlink are still not what the store wrote.
    rmSync(join(dir, "payload/rules.txt"));
    writeFileSync(join(base, "rules-copy.txt"), "one\n");
    symlinkSync(join(base, "rules-copy.txt"), join(dir, "payload/rules.txt"));
    expect(store.verifyInstalled(TYPE)?.problems[0]).toEqual({
      path: "rules.txt",
      reason: "not a regular file",
    });
  });
});

describe("crash points (in-process)", () => {
  class SimulatedCrash extends Error {}

  /** Counts the durable steps of upgrading v1 → v2. */
  function stepsOfUpgrade(): number {
    state = mkdtempSync(join(base, "count-"));
    const store = newStore();
    install(store, v1);
    let steps = 0;
    setCrashHook((n) => {
      steps = n;
    });
    try {
      install(store, v2);
    } finally {
      setCrashHook(undefined);
    }
    return steps;
  }

  test("stopping after any step of an upgrade leaves exactly v1 or v2, intact", () => {
    const total = stepsOfUpgrade();
    expect(total).toBeGreaterThan(20);
    const seen = new Set<number>();
    for (let n = 1; n <= total; n++) {
      state = mkdtempSync(join(base, `crash-${n}-`));
      const store = newStore();
      install(store, v1);
      setCrashHook((step) => {
        if (step === n) throw new SimulatedCrash(`crash at ${step}`);
      });
      try {
        expect(() => install(store, v2)).toThrow(SimulatedCrash);
      } finally {
        setCrashHook(undefined);
      }
      const recovered = newStore();
      const rec = recovered.installed(TYPE);
      expect(rec === null ? null : rec.version).toBeOneOf([1, 2]);
      seen.add(rec!.version);
      expect(recovered.verifyInstalled(TYPE)?.ok).toBe(true);
      expect(readdirSync(typeDir("staging"))).toEqual([]);
      // Whatever survived, the store can always go on to the next version.
      install(recovered, v3);
      expect(recovered.verifyInstalled(TYPE)?.ok).toBe(true);
    }
    expect([...seen].sort()).toEqual([1, 2]);
  });
});
