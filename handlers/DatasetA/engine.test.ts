import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compilePattern } from "../_shared/matcher/pattern.ts";
import { datasetFromSources } from "./dataset.ts";
import type { ScanOutcome } from "./engine.ts";
import { buildPe, generateSignatureSet, implant, Rng, writeZip } from "./testutil.ts";

const spillDir = mkdtempSync(join(tmpdir(), "outpost-dsa-"));
process.on("exit", () => rmSync(spillDir, { recursive: true, force: true }));

const hexBytes = (h: string) => new Uint8Array(Buffer.from(h, "hex"));
const names = (r: ScanOutcome) => r.detections.map((d) => d.name).sort();

function datasetOf(ndb: string, extra: { path: string; text: string }[] = []) {
  return datasetFromSources([{ path: "t.ndb", text: ndb }, ...extra]);
}

describe("body signature language", () => {
  const cases: [string, string, string, boolean][] = [
    ["plain", "0011223344556677", "ff0011223344556677ff", true],
    ["plain miss", "0011223344556677", "ff0011223344556676ff", false],
    ["?? any byte", "11223344??66778899", "001122334400667788990", true],
    ["high nibble", "11223344a?66778899", "11223344ab66778899", true],
    ["high nibble miss", "11223344a?66778899", "11223344bb66778899", false],
    ["low nibble", "11223344?b66778899", "11223344cb66778899", true],
    ["{n} fixed gap", "11223344{3}55667788", "11223344000000556677880", true],
    ["{n} too short", "11223344{3}55667788", "112233440000556677880", false],
    ["{n-m} lower", "11223344{2-4}55667788", "1122334400005566778800", true],
    ["{n-m} upper", "11223344{2-4}55667788", "11223344000000005566778800", true],
    ["{n-m} above", "11223344{2-4}55667788", "1122334400000000005566778800", false],
    ["{-n}", "11223344{-2}55667788", "112233445566778800", true],
    ["[n-m]", "11223344[1-2]55667788", "1122334400556677880", true],
    ["{n-} at least", "11223344{3-}55667788", "1122334400000000000055667788", true],
    ["{n-} too close", "11223344{3-}55667788", "11223344000055667788", false],
    ["* any", "11223344*55667788", `11223344${"ab".repeat(5000)}55667788`, true],
    ["* order matters", "11223344*55667788", "5566778811223344", false],
    ["alternatives", "11223344(aa|bbcc)55667788", "11223344bbcc55667788", true],
    ["alternatives miss", "11223344(aa|bbcc)55667788", "11223344bb55667788", false],
    ["negated", "11223344!(aa|bb)55667788", "11223344cc55667788", true],
    ["negated hit", "11223344!(aa|bb)55667788", "11223344aa55667788", false],
    ["short anchor", "aabb??ccdd", "00aabb00ccdd", true],
    ["anchor in later part", "aabb??cc*1122334455", "00aabb00cc0099112233445500", true],
    ["three parts", "1122*33445566*7788", "11220033445566007788", true],
  ];
  for (const [label, sig, data, expected] of cases) {
    test(`${label}: ${sig}`, async () => {
      const ds = datasetOf(`T.Sig:0:*:${sig}\n`);
      const r = await ds.scan(hexBytes(data.length % 2 ? `${data}0` : data), { spillDir });
      expect(names(r)).toEqual(expected ? ["T.Sig"] : []);
    });
  }

  test("the anchor avoids zero runs and the match offset is the signature start", async () => {
    const p = compilePattern("0000000000c3d2e1f0");
    expect(Buffer.from(p.anchor.bytes).toString("hex")).not.toBe("00000000");
    const ds = datasetOf("T.Sig:0:*:0000000000c3d2e1f0\n");
    const r = await ds.scan(hexBytes(`${"11".repeat(37)}0000000000c3d2e1f0`), { spillDir });
    expect(r.detections[0]?.offset).toBe(37);
  });

  test("offsets: absolute, shift range, EOF", async () => {
    const ds = datasetOf(
      ["T.Abs:0:4:aabbccdd", "T.Shift:0:2,3:11223344", "T.Eof:0:EOF-4:99887766"].join("\n"),
    );
    expect(names(await ds.scan(hexBytes("00000000aabbccdd"), { spillDir }))).toEqual(["T.Abs"]);
    expect(names(await ds.scan(hexBytes("000000aabbccdd"), { spillDir }))).toEqual([]);
    expect(names(await ds.scan(hexBytes("0000000000112233440000"), { spillDir }))).toEqual(["T.Shift"]);
    expect(names(await ds.scan(hexBytes("00000000000011223344"), { spillDir }))).toEqual([]);
    expect(names(await ds.scan(hexBytes("0011223399887766"), { spillDir }))).toEqual(["T.Eof"]);
    expect(names(await ds.scan(hexBytes("001122339988776600"), { spillDir }))).toEqual([]);
  });

  test("target types: a PE signature ignores ELF and plain data", async () => {
    const pe = buildPe({ text: hexBytes("5589e583ec10c745fc2a000000") });
    const ds = datasetOf(
      [
        "T.PE.EP:1:EP+0:5589e583ec10c745",
        "T.PE.S1:1:S1+0:6f7574706f7374",
        "T.PE.SE0:1:SE0:c745fc2a",
        "T.ELF:6:*:5589e583ec10c745",
      ].join("\n"),
    );
    expect(names(await ds.scan(pe, { spillDir }))).toEqual(["T.PE.EP", "T.PE.S1", "T.PE.SE0"]);
    const plain = new Uint8Array(pe);
    plain[0] = 0x4e; // no longer "MZ"
    expect(names(await ds.scan(plain, { spillDir }))).toEqual([]);
  });

  test("ELF entry point and sections of a real binary", async () => {
    const elf = new Uint8Array(readFileSync("/usr/bin/ls"));
    const { parseElf } = await import("../_shared/filetype/filetype.ts");
    const info = parseElf(elf)!;
    const ep = info.entry!;
    const hex = (o: number, n: number) => Buffer.from(elf.subarray(o, o + n)).toString("hex");
    const text = info.sections.findIndex((s) => s.offset <= ep && ep < s.offset + s.size);
    const ds = datasetOf(
      [
        `T.EP:6:EP+0:${hex(ep, 12)}`,
        `T.Sx:6:S${text}+16:${hex(info.sections[text]!.offset + 16, 12)}`,
        `T.EPwrong:6:EP+1:${hex(ep, 12)}`,
      ].join("\n"),
    );
    expect(names(await ds.scan(elf, { spillDir }))).toEqual(["T.EP", "T.Sx"]);
  });
});

describe("hash signatures", () => {
  test("MD5 (.hdb), SHA-1 and SHA-256 (.hsb), exact and wildcard sizes", async () => {
    const data = new TextEncoder().encode("an object a hash signature names");
    const h = (a: string) => createHash(a).update(data).digest("hex");
    const ds = datasetFromSources([
      { path: "a.hdb", text: `${h("md5")}:${data.length}:T.Md5\n` },
      {
        path: "b.hsb",
        text: [
          `${h("sha1")}:${data.length}:T.Sha1`,
          `${h("sha256")}:*:T.Sha256Any:73`,
          `${h("sha256")}:${data.length + 1}:T.WrongSize`,
        ].join("\n"),
      },
    ]);
    const r = await ds.scan(data, { spillDir });
    expect(names(r)).toEqual(["T.Md5", "T.Sha1", "T.Sha256Any"]);
    expect(r.detections.every((d) => d.kind === "hash" && d.sha256 === h("sha256"))).toBe(true);
  });

  test("the lookup flag comes from lookup.txt", async () => {
    const ds = datasetOf("T.Look:0:*:0102030405\nT.Quiet:0:*:0a0b0c0d0e\n", [
      { path: "lookup.txt", text: "# live\nT.Look\n" },
    ]);
    const r = await ds.scan(hexBytes("01020304050a0b0c0d0e"), { spillDir });
    expect(r.detections.map((d) => [d.name, d.lookup])).toEqual([
      ["T.Look", true],
      ["T.Quiet", false],
    ]);
  });
});

describe("scale", () => {
  test("20k body + 20k hash signatures load fast and find every implanted instance", async () => {
    const set = generateSignatureSet(7, 20_000, 20_000, { hashBacked: 20 });
    // CPU time, not wall time: a loaded box (a second suite alongside) must not fail a bound on our work.
    const t = process.cpuUsage();
    const ds = datasetFromSources([
      { path: "g.hsb", text: set.hsb },
      { path: "g.ndb", text: set.ndb },
    ]);
    const used = process.cpuUsage(t);
    const loadMs = (used.user + used.system) / 1000;
    expect(ds.stats.bodySignatures).toBe(20_000);
    expect(loadMs).toBeLessThan(5000);
    const rng = new Rng(99);
    const data = rng.bytes(4 * 1024 * 1024);
    const picks = [3, 500, 7777, 12_345, 19_999];
    for (const [i, p] of picks.entries()) implant(data, set.body[p]!.instance, 100_000 + i * 700_000);
    const r = await ds.scan(data, { spillDir });
    expect(names(r)).toEqual(picks.map((p) => `Gen.Body.${p}`).sort());
    const backed = set.hashes[4]!;
    expect(names(await ds.scan(backed.data!, { spillDir }))).toContain("Gen.Hash.4");
    // Its bound is on CPU time above; the wall-clock ceiling only has to survive a loaded machine.
  }, 30_000);
});

describe("signature file errors name the file and line", () => {
  const bad: [string, string, RegExp][] = [
    ["t.ndb", "T.A:0:*:0011223344\nT.B:0:*:00zz\n", /t\.ndb:2: pattern: unexpected 'zz'/],
    ["t.ndb", "T.A:3:*:0011223344\n", /unsupported target type '3'/],
    ["t.ndb", "T.A:0:EP+0:0011223344\n", /needs an executable target type/],
    ["t.ndb", "T.A:0:*:00??11\n", /no 2 consecutive fixed bytes/],
    ["t.ndb", "T.A:0:*:(B)0011223344\n", /boundary markers are not supported/],
    ["t.ndb", "T.A:0:XX:0011223344\n", /unsupported offset 'XX'/],
    ["t.hdb", "abcd:12:T.A\n", /32 \(MD5\)/],
    ["t.hsb", `${"a".repeat(64)}:*:T.A\n`, /functionality level of at least 73/],
  ];
  for (const [file, text, re] of bad) {
    test(re.source, () => {
      let err: unknown;
      try {
        datasetFromSources([{ path: file, text }]);
      } catch (e) {
        err = e;
      }
      expect((err as { code?: string }).code).toBe("HND_DATASETA_INVALID");
      expect((err as Error).message).toMatch(re);
    });
  }

  test("a lookup name that no signature defines is rejected", () => {
    expect(() =>
      datasetOf("T.A:0:*:0011223344\n", [{ path: "lookup.txt", text: "T.A\nT.Missing\n" }]),
    ).toThrow(/lookup\.txt:2: lookup-enabled signature 'T.Missing' is not defined/);
  });
});

test("a pathological pattern is cut off by the verification budget, not left to run", async () => {
  const ds = datasetOf("T.Slow:0:*:41414141{0-60000}42424242{0-60000}43434343\n");
  const data = new Uint8Array(200_000).fill(0x41);
  const r = await ds.scan(data, { spillDir, limits: { verifyBudget: 200_000 } });
  expect(r.detections).toEqual([]);
  expect(r.limits.map((l) => l.limit)).toEqual(["budget"]);
});

describe("verification work is bounded per signature, never per object (issue 21)", () => {
  test("a crafted prefix against a legal wide-gap signature does not hide a later, unrelated detection", async () => {
    // W's first part is the anchor (its second is zeros, which the byte model rates common); every copy of
    // it in the prefix makes verification walk the whole {0-999999} gap looking for eight zero bytes.
    const ds = datasetOf(
      "T.Wide:0:*:8badf00d8badf00d{0-999999}0000000000000000\nT.Later:0:*:0123456789abcdef0123\n",
    );
    const data = new Uint8Array(400_000).fill(0x41);
    const w = hexBytes("8badf00d8badf00d");
    for (let i = 0; i < 20_000; i++) data.set(w, i * 8);
    implant(data, hexBytes("0123456789abcdef0123"), 390_000);
    const r = await ds.scan(data, { spillDir });
    expect(names(r)).toEqual(["T.Later"]);
    const notes = r.limits.filter((l) => l.limit === "budget");
    expect(notes.length).toBe(1);
    expect(notes[0]!.detail).toContain("T.Wide");
  }, 15_000);

  test("a common first part with a missing later part costs one search, not one per hit", async () => {
    // Before the per-object memo every hit of 11223344 searched the rest of the object for 55667788.
    const ds = datasetOf("T.Star:0:*:11223344*55667788\n");
    const data = new Uint8Array(800_000).fill(0x41);
    const a = hexBytes("11223344");
    for (let i = 0; i < 100_000; i++) data.set(a, i * 8);
    const t = process.cpuUsage();
    expect(names(await ds.scan(data, { spillDir }))).toEqual([]);
    implant(data, hexBytes("55667788"), 799_000);
    expect(names(await ds.scan(data, { spillDir }))).toEqual(["T.Star"]);
    const used = process.cpuUsage(t);
    expect((used.user + used.system) / 1000).toBeLessThan(3000);
  }, 15_000);

  test("parts before the anchor are found by the memoised chain: order and gaps still hold", async () => {
    // The anchor is the rare last part; the common first part must still occur, in order, before it.
    const ds = datasetOf("T.Chain:0:*:00000000*01010101{2-}8badf00d\n");
    const ok = hexBytes(`ff00000000ff01010101ffff8badf00dff`);
    const tooClose = hexBytes(`ff00000000ff01010101ff8badf00dff`);
    const wrongOrder = hexBytes(`ff01010101ff00000000ffff8badf00dff`);
    expect(names(await ds.scan(ok, { spillDir }))).toEqual(["T.Chain"]);
    expect(names(await ds.scan(tooClose, { spillDir }))).toEqual([]);
    expect(names(await ds.scan(wrongOrder, { spillDir }))).toEqual([]);
  });

  test("a part before the anchor is searched only up to each hit, resuming where the last search stopped", async () => {
    const sig = "0000000000000000*8badf00dcafebabe";
    expect(compilePattern(sig).anchor.part).toBe(1);
    const ds = datasetOf(`T.Before:0:*:${sig}\n`);
    const zeros = "0000000000000000";
    const hit = "8badf00dcafebabe";
    const at = (parts: [number, string][], size = 400) => {
      const d = new Uint8Array(size).fill(0x41);
      for (const [o, h] of parts) d.set(hexBytes(h), o);
      return d;
    };
    const scan = async (d: Uint8Array) => (await ds.scan(d, { spillDir })).detections.map((x) => x.offset);
    // The first part only after every hit: no match (order matters, the bounded search must not find it).
    expect(
      await scan(
        at([
          [20, hit],
          [120, hit],
          [300, zeros],
        ]),
      ),
    ).toEqual([]);
    // Ending exactly where the first hit starts: a match.
    expect(
      await scan(
        at([
          [12, zeros],
          [20, hit],
          [120, hit],
        ]),
      ),
    ).toEqual([12]);
    // Between two hits.
    expect(
      await scan(
        at([
          [20, hit],
          [60, zeros],
          [120, hit],
        ]),
      ),
    ).toEqual([60]);
    // Ending one byte past the first hit's bound (its part starts with `??`, which the last zero fills):
    // not before that hit, but before the second — found when the search resumes short of where it stopped.
    const straddle = datasetOf(`T.Straddle:0:*:${zeros}*??${hit}\n`);
    const scanS = async (d: Uint8Array) =>
      (await straddle.scan(d, { spillDir })).detections.map((x) => x.offset);
    expect(
      await scanS(
        at([
          [13, zeros],
          [21, hit],
          [121, hit],
        ]),
      ),
    ).toEqual([13]);
    expect(
      await scanS(
        at([
          [13, zeros],
          [21, hit],
        ]),
      ),
    ).toEqual([]);
  });

  test("a missing part before a common anchor costs one pass up to the last hit, not one per hit", async () => {
    const ds = datasetOf("T.Before:0:*:0000000000000000*8badf00dcafebabe\n");
    const data = new Uint8Array(4_000_000).fill(0x41);
    const hit = hexBytes("8badf00dcafebabe");
    for (let i = 0; i < 100_000; i++) data.set(hit, i * 40);
    const t = process.cpuUsage();
    expect(names(await ds.scan(data, { spillDir }))).toEqual([]);
    implant(data, hexBytes("0000000000000000"), 3_999_960);
    expect(names(await ds.scan(data, { spillDir }))).toEqual([]);
    data.set(hexBytes("0000000000000000"), 3_999_900);
    data.set(hit, 3_999_950);
    expect(names(await ds.scan(data, { spillDir }))).toEqual(["T.Before"]);
    const used = process.cpuUsage(t);
    expect((used.user + used.system) / 1000).toBeLessThan(3000);
  }, 15_000);
});

test("anchors avoid common machine code: the rarest window under the measured byte model wins", () => {
  // 0f1f840000000000 is a multi-byte NOP, everywhere in x86 code; the old static table chose it.
  const p = compilePattern("0f1f840000000000e8c7a3fd4889");
  expect(Buffer.from(p.anchor.bytes).toString("hex")).not.toMatch(/^(0f1f8400|1f840000|84000000|00000000)$/);
  // The bytes beside the anchor are the extension word the index checks first.
  expect(p.anchor.ext).not.toBeNull();
});

describe("first match per object (clamscan's default; all matches is clamscan --allmatch)", () => {
  const sigs = ["T.A:0:*:a1a2a3a4a5a6", "T.B:0:*:b1b2b3b4b5b6", "T.C:0:*:c1c2c3c4*c5c6c7c8"].join("\n");
  const data = hexBytes(`00c1c2c3c400a1a2a3a4a5a600b1b2b3b4b5b600c5c6c7c800`);

  test("all matches reports every signature; first match stops at the first that verifies", async () => {
    const ds = datasetOf(`${sigs}\n`);
    expect(names(await ds.scan(data, { spillDir }))).toEqual(["T.A", "T.B", "T.C"]);
    const first = await ds.scan(data, { spillDir, limits: { firstMatch: true } });
    // T.C's first part comes first but its match ends last: T.A is the first to verify.
    expect(names(first)).toEqual(["T.A"]);
    expect(first.detections[0]!.offset).toBe(6);
  });

  test("a lookup-enabled detection does not stop the object (Live Protection may dismiss it)", async () => {
    const ds = datasetOf(`${sigs}\n`, [{ path: "lookup.txt", text: "T.A\n" }]);
    const r = await ds.scan(data, { spillDir, limits: { firstMatch: true } });
    expect(r.detections.map((d) => [d.name, d.lookup])).toEqual([
      ["T.A", true],
      ["T.B", false],
    ]);
  });

  test("a hash detection settles the object before the body signatures run", async () => {
    const sha = createHash("sha256").update(data).digest("hex");
    const ds = datasetFromSources([
      { path: "t.ndb", text: `${sigs}\n` },
      { path: "t.hsb", text: `${sha}:${data.length}:T.Hash\n` },
    ]);
    expect(names(await ds.scan(data, { spillDir, limits: { firstMatch: true } }))).toEqual(["T.Hash"]);
    expect(names(await ds.scan(data, { spillDir }))).toEqual(["T.A", "T.B", "T.C", "T.Hash"]);
  });

  test("each member of a container is its own object: every infected member is still reported", async () => {
    const ds = datasetOf(`${sigs}\n`);
    const zip = writeZip([
      { name: "one.bin", data: hexBytes("0000b1b2b3b4b5b60000"), store: true },
      { name: "two.bin", data: hexBytes("0000a1a2a3a4a5a60000") },
      { name: "clean.txt", data: new TextEncoder().encode("nothing here") },
    ]);
    const r = await ds.scan(zip, { spillDir, limits: { firstMatch: true } });
    expect(r.detections.map((d) => `${d.path.join("/")}:${d.name}`).sort()).toEqual([
      "one.bin:T.B",
      "two.bin:T.A",
    ]);
  });
});
