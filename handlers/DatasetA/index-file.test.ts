import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileSources, type SignatureFile } from "./compiled.ts";
import { datasetFromSources } from "./dataset.ts";
import { Dataset, type ScanOutcome } from "./engine.ts";
import { INDEX_FILE, readIndex, writeIndex } from "./index-file.ts";
import { generateSignatureSet, implant, Rng } from "./testutil.ts";

const spillDir = mkdtempSync(join(tmpdir(), "outpost-dsa-idx-"));
process.on("exit", () => rmSync(spillDir, { recursive: true, force: true }));
const enc = (t: string) => new TextEncoder().encode(t);

const set = generateSignatureSet(11, 2000, 2000, { hashBacked: 5, prefix: "Idx" });
const md5Data = enc("md5-signed object");
const sha1Data = enc("sha1-signed object, any size");
const extraHsb = [
  `${createHash("sha1").update(sha1Data).digest("hex")}:*:Idx.Sha1.Any:73`,
  `${"ab".repeat(32)}:10:Idx.Skipped:999`,
].join("\n");
const hdb = `# md5\n${createHash("md5").update(md5Data).digest("hex")}:${md5Data.length}:Idx.Md5\n`;
const extraNdb = "Idx.Short:0:*:aabb??ccdd\nIdx.Flevel:0:*:0011223344556677:300\n";
const payload: SignatureFile[] = [
  { path: "g.hsb", bytes: enc(`${set.hsb}${extraHsb}\n`) },
  { path: "g.ndb", bytes: enc(set.ndb) },
  { path: "extra.ndb", bytes: enc(extraNdb) },
  { path: "m.hdb", bytes: enc(hdb) },
  { path: "lookup.txt", bytes: enc("Idx.Body.7\nIdx.Hash.2\nIdx.Flevel\n") },
];
const compiled = compileSources(payload);
const index = writeIndex(compiled, payload.find((f) => f.path === "lookup.txt")!.bytes);

const rng = new Rng(5);
const data = rng.bytes(1 << 20);
const picks = [7, 100, 1999];
picks.forEach((p, i) => {
  implant(data, set.body[p]!.instance, 1000 + i * 300_000);
});
implant(data, Uint8Array.from([0x99, 0xaa, 0xbb, 0x00, 0xcc, 0xdd]), 999_000);
const objects = [data, set.hashes[2]!.data!, md5Data, sha1Data];

const summary = (r: ScanOutcome) =>
  r.detections.map((d) => `${d.name} ${d.offset ?? "-"} ${d.source} ${d.lookup}`).sort();

async function scanAll(ds: Dataset): Promise<string[][]> {
  const out: string[][] = [];
  for (const o of objects) out.push(summary(await ds.scan(o, { spillDir })));
  return out;
}

describe("signatures.idx", () => {
  test("loads to the same detections, sources and lookup flags as compiling the text", async () => {
    const fromText = new Dataset(compiled);
    const fromIndex = datasetFromSources([...payload, { path: INDEX_FILE, bytes: index }]);
    const expected = await scanAll(fromText);
    expect(expected[0]).toEqual([
      "Idx.Body.100 301000 g.ndb:101 false",
      "Idx.Body.1999 601000 g.ndb:2000 false",
      "Idx.Body.7 1000 g.ndb:8 true",
      "Idx.Short 999001 extra.ndb:1 false",
    ]);
    expect(expected.slice(1)).toEqual([
      ["Idx.Hash.2 - g.hsb:3 true"],
      ["Idx.Md5 - m.hdb:2 false"],
      ["Idx.Sha1.Any - g.hsb:2001 false"],
    ]);
    expect(await scanAll(fromIndex)).toEqual(expected);
    expect(fromIndex.stats).toEqual(fromText.stats);
    expect(fromText.stats).toMatchObject({
      hashSignatures: 2002,
      bodySignatures: 2001,
      lookupSignatures: 2,
      flevelSkipped: 2,
      shortAnchors: 1,
    });
  });

  test("an index handed over at an unaligned offset is read the same", async () => {
    const shifted = new Uint8Array(index.length + 3);
    shifted.set(index, 3);
    const ds = datasetFromSources([...payload, { path: INDEX_FILE, bytes: shifted.subarray(3) }]);
    expect(ds.stats.bodySignatures).toBe(2001);
  });

  const refusal = (files: SignatureFile[], idx: Uint8Array) => {
    try {
      readIndex(idx, files);
    } catch (e) {
      return e as { code?: string; message: string };
    }
    throw new Error("expected the index to be refused");
  };

  test("an index built from other signature files is refused", () => {
    const edited = payload.map((f) =>
      f.path === "g.ndb" ? { path: f.path, bytes: Uint8Array.from(f.bytes).fill(0x41, 0, 1) } : f,
    );
    const e = refusal(edited, index);
    expect(e.code).toBe("HND_DATASETA_INDEX");
    expect(e.message).toContain("built from other signature files");
    expect(refusal(payload.slice(0, 4), index).message).toContain("built from other signature files");
  });

  /** A copy of the index with one section's bytes changed. */
  const patched = (name: string, edit: (section: DataView) => void) => {
    const copy = Uint8Array.from(index);
    const hlen = new DataView(copy.buffer).getUint32(8, true);
    const header = JSON.parse(new TextDecoder().decode(copy.subarray(12, 12 + hlen)));
    const [at, len] = header.sections[name];
    edit(new DataView(copy.buffer, at, len));
    return copy;
  };

  test("a damaged index is refused with the reason, never trusted", () => {
    const cases: [Uint8Array, RegExp][] = [
      [patched("anchors.listSigs", (v) => v.setUint32(0, 1e6, true)), /names signature 1000000/],
      [patched("anchors.keys", (v) => v.setUint32(4, 0, true)), /not strictly increasing/],
      [patched("body.start", (v) => v.setUint32(4, 7, true)), /reference 1 is not a line start/],
      [patched("body.file", (v) => v.setUint16(0, 3, true)), /not a \.ndb file/],
      [patched("sha256.digests", (v) => v.setUint8(0, 0xff)), /rows not sorted/],
      [patched("sha256.sizes", (v) => v.setFloat64(0, 1.5, true)), /bad size/],
      [index.subarray(0, index.length - 64), /out of bounds/],
      [Uint8Array.from(index).fill(0x20, 0, 4), /bad magic/],
    ];
    for (const [bytes, re] of cases) {
      const e = refusal(payload, bytes);
      expect(e.code).toBe("HND_DATASETA_INDEX");
      expect(e.message).toMatch(re);
    }
  });

  test("an index from an engine with another anchor model is set aside and the text compiled", async () => {
    const copy = Uint8Array.from(index);
    const hlen = new DataView(copy.buffer).getUint32(8, true);
    const text = new TextDecoder().decode(copy.subarray(12, 12 + hlen));
    const engine = (JSON.parse(text) as { engine: string }).engine;
    copy.set(enc(text.replace(engine, "0".repeat(16))), 12);
    expect(readIndex(copy, payload)).toBeNull();
    const ds = datasetFromSources([...payload, { path: INDEX_FILE, bytes: copy }]);
    expect(await scanAll(ds)).toEqual(await scanAll(new Dataset(compiled)));
  });
});
