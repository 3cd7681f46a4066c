/**
 * The pure trust core, one test (or a few) per rule, without an agent, a
 * store or a transport: bytes and remembered facts in, a verdict out. The
 * end-to-end versions of these attacks are in test/attacks/.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { signDetached } from "../crypto/cms-sign.ts";
import { sha384Hex } from "../crypto/digest.ts";
import { makeCertChain, type TestChain } from "../crypto/testing.ts";
import { packDirectory } from "../package/pack.ts";
import { packagePath, type RepoIndex, serializeIndex } from "../repo/index-format.ts";
import {
  checkIndexFresh,
  decide,
  type IndexEntry,
  type InstalledFacts,
  laterTime,
  policyGroup,
  selectEntry,
  verifyIndex,
  verifyPackage,
} from "./trusted-state.ts";

const HOUR = 3600_000;
const NOW = new Date();
const FILE = "groups/public-1/index.json";
const GROUP = "public-1";
const TYPE = "Hmpa_data";

let chain: TestChain;
let other: TestChain;
let dir: string;

beforeAll(async () => {
  [chain, other] = await Promise.all([
    makeCertChain({ now: NOW }),
    makeCertChain({ now: NOW, name: "Evil" }),
  ]);
  dir = mkdtempSync(join(tmpdir(), "outpost-trusted-state-"));
  writeFileSync(join(dir, "data.bin"), "payload");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function index(overrides: Partial<RepoIndex> = {}): RepoIndex {
  return {
    schema: 1,
    group: GROUP,
    serial: 5,
    issued: new Date(NOW.getTime() - HOUR).toISOString(),
    expires: new Date(NOW.getTime() + 24 * HOUR).toISOString(),
    content: {},
    ...overrides,
  };
}

async function signedIndex(i: RepoIndex, keys = chain.signingKeys) {
  const bytes = serializeIndex(i);
  return { bytes, sig: await signDetached(bytes, keys, { signingTime: new Date(NOW.getTime() - HOUR) }) };
}

async function pkg(opts: { type?: string; version: number; signedAt?: Date; keys?: TestChain }) {
  const bytes = await packDirectory({
    type: opts.type ?? TYPE,
    version: opts.version,
    keys: (opts.keys ?? chain).signingKeys,
    dir,
    now: opts.signedAt ?? new Date(NOW.getTime() - HOUR),
  });
  const sha384 = sha384Hex(bytes);
  const entry: IndexEntry = {
    version: opts.version,
    path: packagePath(opts.type ?? TYPE, opts.version, sha384),
    size: bytes.length,
    sha384,
  };
  return { bytes, entry };
}

const codeOf = async (p: Promise<unknown>) =>
  (
    (await p.then(
      () => undefined,
      (e) => e,
    )) as { code?: string }
  )?.code;
const ctx = () => ({ trust: chain.trust, group: GROUP, now: NOW, file: FILE });
const pctx = () => ({ trust: chain.trust, now: NOW, file: "packages/x.tar" });
const installed = (f: Partial<InstalledFacts> = {}): InstalledFacts => ({
  version: 2,
  signingTime: new Date(NOW.getTime() - 3 * HOUR).toISOString(),
  ...f,
});
const decideOpts = { isBad: false, maxPackageBytes: 1 << 20, file: "packages/x.tar" };

describe("index rules", () => {
  test("R1: an index signed under another root → SIG_UNTRUSTED_CHAIN", async () => {
    const { bytes, sig } = await signedIndex(index(), other.signingKeys);
    expect(await codeOf(verifyIndex(bytes, sig, ctx()))).toBe("SIG_UNTRUSTED_CHAIN");
  });

  test("R1: one byte of a signed index changed → SIG_DIGEST_MISMATCH, nothing parsed", async () => {
    const { bytes, sig } = await signedIndex(index());
    const tampered = bytes.slice();
    tampered[tampered.length - 2] = 0x20;
    expect(await codeOf(verifyIndex(tampered, sig, ctx()))).toBe("SIG_DIGEST_MISMATCH");
  });

  test("R2: an index for another group → IDX_WRONG_GROUP", async () => {
    const { bytes, sig } = await signedIndex(index({ group: "public-2" }));
    expect(await codeOf(verifyIndex(bytes, sig, ctx()))).toBe("IDX_WRONG_GROUP");
  });

  test("R3: a serial below the highest seen → IDX_SERIAL_ROLLBACK; above it is accepted", async () => {
    const { bytes, sig } = await signedIndex(index({ serial: 4 }));
    const memory = { lastSerial: 5, lastIndexSha384: "0".repeat(96) };
    expect(await codeOf(verifyIndex(bytes, sig, { ...ctx(), memory }))).toBe("IDX_SERIAL_ROLLBACK");
    const next = await signedIndex(index({ serial: 6 }));
    expect((await verifyIndex(next.bytes, next.sig, { ...ctx(), memory })).serial).toBe(6);
  });

  test("R4: the same serial with other bytes → IDX_SERIAL_REUSED; the same bytes again are accepted", async () => {
    const { bytes, sig } = await signedIndex(index());
    const memory = { lastSerial: 5, lastIndexSha384: sha384Hex(bytes) };
    expect((await verifyIndex(bytes, sig, { ...ctx(), memory })).serial).toBe(5);
    const forked = await signedIndex(index({ expires: new Date(NOW.getTime() + 48 * HOUR).toISOString() }));
    expect(await codeOf(verifyIndex(forked.bytes, forked.sig, { ...ctx(), memory }))).toBe(
      "IDX_SERIAL_REUSED",
    );
  });

  test("R5: an expired index → IDX_EXPIRED, also when re-checked from cache", async () => {
    const stale = index({
      issued: new Date(NOW.getTime() - 48 * HOUR).toISOString(),
      expires: new Date(NOW.getTime() - HOUR).toISOString(),
    });
    const { bytes, sig } = await signedIndex(stale);
    expect(await codeOf(verifyIndex(bytes, sig, ctx()))).toBe("IDX_EXPIRED");
    expect(() => checkIndexFresh(index(), new Date(NOW.getTime() + 25 * HOUR), FILE)).toThrow(
      expect.objectContaining({ code: "IDX_EXPIRED" }),
    );
  });
});

describe("package rules", () => {
  test("R6: bytes of another length than the index declares → UPD_SIZE_MISMATCH", async () => {
    const { bytes, entry } = await pkg({ version: 3 });
    expect(await codeOf(verifyPackage(bytes.slice(1), TYPE, entry, undefined, pctx()))).toBe(
      "UPD_SIZE_MISMATCH",
    );
  });

  test("R7: a validly signed package other than the one the index names → UPD_HASH_MISMATCH", async () => {
    const a = await pkg({ version: 3 });
    const b = await pkg({ version: 3, signedAt: new Date(NOW.getTime() - 2 * HOUR) });
    const swapped = { ...a.entry, size: b.bytes.length };
    expect(await codeOf(verifyPackage(b.bytes, TYPE, swapped, undefined, pctx()))).toBe("UPD_HASH_MISMATCH");
  });

  test("R8: a package signed under another root → SIG_UNTRUSTED_CHAIN", async () => {
    const { bytes, entry } = await pkg({ version: 3, keys: other });
    expect(await codeOf(verifyPackage(bytes, TYPE, entry, undefined, pctx()))).toBe("SIG_UNTRUSTED_CHAIN");
  });

  test("R9: the signed manifest names another type → PKG_WRONG_TYPE; another version → UPD_VERSION_MISMATCH", async () => {
    const wrongType = await pkg({ type: "Other", version: 3 });
    expect(await codeOf(verifyPackage(wrongType.bytes, TYPE, wrongType.entry, undefined, pctx()))).toBe(
      "PKG_WRONG_TYPE",
    );
    const v3 = await pkg({ version: 3 });
    expect(await codeOf(verifyPackage(v3.bytes, TYPE, { ...v3.entry, version: 4 }, undefined, pctx()))).toBe(
      "UPD_VERSION_MISMATCH",
    );
  });

  test("R10: an offer older than the installed version → UPD_DOWNGRADE, before and after download", async () => {
    const v1 = await pkg({ version: 1 });
    const d = decide(TYPE, v1.entry, installed(), decideOpts);
    expect(d.action === "reject" && d.error.code).toBe("UPD_DOWNGRADE");
    expect(await codeOf(verifyPackage(v1.bytes, TYPE, v1.entry, installed(), pctx()))).toBe("UPD_DOWNGRADE");
  });

  test("R11: signed before the installed package → UPD_REPLAY_OLDER_SIGNATURE", async () => {
    const v3 = await pkg({ version: 3, signedAt: new Date(NOW.getTime() - 4 * HOUR) });
    expect(await codeOf(verifyPackage(v3.bytes, TYPE, v3.entry, installed(), pctx()))).toBe(
      "UPD_REPLAY_OLDER_SIGNATURE",
    );
  });

  test("R11: after the installed one but before the newest ever installed (a rollback) → UPD_REPLAY_OLDER_SIGNATURE", async () => {
    const v3 = await pkg({ version: 3, signedAt: new Date(NOW.getTime() - 2 * HOUR) });
    const rolledBack = installed({ newestSigningTime: new Date(NOW.getTime() - HOUR).toISOString() });
    const err = await verifyPackage(v3.bytes, TYPE, v3.entry, rolledBack, pctx()).catch((e) => e);
    expect(err.code).toBe("UPD_REPLAY_OLDER_SIGNATURE");
    expect(err.message).toContain("newest package ever installed");
    // Without the rollback's memory the same package passes: the high-water mark is what refuses it.
    const ok = await verifyPackage(v3.bytes, TYPE, v3.entry, installed(), pctx());
    expect(ok.pkg.manifest.version).toBe(3);
  });

  test("R12: the installed version number naming other bytes → UPD_VERSION_REUSED; the same bytes → up to date", async () => {
    const v2 = await pkg({ version: 2 });
    const same = decide(TYPE, v2.entry, installed({ sha384: v2.entry.sha384 }), decideOpts);
    expect(same).toEqual({ action: "skip", why: "up-to-date" });
    const reused = decide(TYPE, v2.entry, installed({ sha384: "f".repeat(96) }), decideOpts);
    expect(reused.action === "reject" && reused.error.code).toBe("UPD_VERSION_REUSED");
  });

  test("decide: a version marked bad is skipped; a package over the handler's limit → UPD_TOO_LARGE", async () => {
    const v3 = await pkg({ version: 3 });
    expect(decide(TYPE, v3.entry, installed(), { ...decideOpts, isBad: true })).toEqual({
      action: "skip",
      why: "marked-bad",
    });
    const big = decide(TYPE, v3.entry, installed(), { ...decideOpts, maxPackageBytes: v3.entry.size - 1 });
    expect(big.action === "reject" && big.error.code).toBe("UPD_TOO_LARGE");
  });

  test("laterTime picks the later instant, whichever side is absent", () => {
    const a = "2026-01-01T00:00:00.000Z";
    const b = "2026-01-02T00:00:00.000Z";
    expect(laterTime(a, b)).toBe(b);
    expect(laterTime(b, a)).toBe(b);
    expect(laterTime(undefined, a)).toBe(a);
    expect(laterTime(a, undefined)).toBe(a);
  });
});

describe("policy rules", () => {
  const entry = (version: number, previous?: number): IndexEntry => ({
    version,
    path: `packages/${TYPE}/${TYPE}-${version}-0000000000000000.tar`,
    size: 10,
    sha384: "a".repeat(96),
    ...(previous === undefined
      ? {}
      : {
          previous: {
            version: previous,
            path: `packages/${TYPE}/${TYPE}-${previous}-0000000000000000.tar`,
            size: 10,
            sha384: "b".repeat(96),
          },
        }),
  });

  test("P1: a pin installs only the pinned version, never moves back", () => {
    const pins = { [TYPE]: 4 };
    const policy = { cadence: "general" as const, pins };
    expect(selectEntry(TYPE, entry(5, 4), installed(), policy)).toEqual({ entry: entry(5, 4).previous! });
    expect("hold" in selectEntry(TYPE, entry(6, 5), installed(), policy)).toBe(true);
    expect(selectEntry(TYPE, entry(5, 4), installed({ version: 5 }), policy)).toMatchObject({
      hold: "pinned",
    });
  });

  test("P2: pinned-n-1 installs the group's previous entry", () => {
    const policy = { cadence: "pinned-n-1" as const, pins: {} };
    expect(selectEntry(TYPE, entry(5, 4), installed(), policy)).toEqual({ entry: entry(5, 4).previous! });
    expect(selectEntry(TYPE, entry(5), installed(), policy)).toMatchObject({ hold: "held-back" });
  });

  test("P3: cadence early polls the early group", () => {
    expect(policyGroup(GROUP, { cadence: "early", earlyGroup: "early-1", pins: {} })).toBe("early-1");
    expect(policyGroup(GROUP, { cadence: "general", earlyGroup: "early-1", pins: {} })).toBe(GROUP);
  });
});
