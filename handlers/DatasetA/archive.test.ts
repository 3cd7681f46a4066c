import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import zlib from "node:zlib";
import { writeTar } from "../../core/package/tar.ts";
import { datasetFromSources } from "./dataset.ts";
import { BOMB_NAME } from "./engine.ts";
import { gzip, writeOverlappingZip, writeZip } from "./testutil.ts";

const spillDir = mkdtempSync(join(tmpdir(), "outpost-dsa-arc-"));
process.on("exit", () => rmSync(spillDir, { recursive: true, force: true }));

const MARK = "6f7574706f73742d6d61726b"; // "outpost-mark"
const ds = datasetFromSources([{ path: "t.ndb", text: `T.Mark:0:*:${MARK}\n` }]);
const marked = (pad = 100) =>
  new Uint8Array(Buffer.concat([Buffer.alloc(pad, 0x20), Buffer.from(MARK, "hex"), Buffer.alloc(pad, 0x20)]));

describe("containers", () => {
  test("zip (deflate and store) members are scanned and named", async () => {
    const zip = writeZip([
      { name: "clean.txt", data: new TextEncoder().encode("nothing here") },
      { name: "dir/bad.bin", data: marked() },
      { name: "stored.bin", data: marked(), store: true },
    ]);
    const r = await ds.scan(zip, { spillDir });
    expect(r.kind).toBe("zip");
    expect(r.detections.map((d) => d.path.join("/"))).toEqual(["dir/bad.bin", "stored.bin"]);
    expect(r.objects).toBe(4);
  });

  test("tar.gz inside a zip inside a zip", async () => {
    const tar = writeTar([
      { path: "readme", data: new TextEncoder().encode("hello") },
      { path: "bin/tool", data: marked() },
    ]);
    const inner = writeZip([{ name: "pkg.tar.gz", data: gzip(tar), store: true }]);
    const outer = writeZip([{ name: "inner.zip", data: inner }]);
    const r = await ds.scan(outer, { spillDir });
    expect(r.detections.map((d) => d.path.join("/"))).toEqual(["inner.zip/pkg.tar.gz/(gunzip)/bin/tool"]);
  });

  test("nesting deeper than maxDepth is reported, not opened", async () => {
    let obj: Uint8Array = marked();
    for (let i = 0; i < 4; i++) obj = writeZip([{ name: `level${i}.zip`, data: obj }]);
    const shallow = await ds.scan(obj, { spillDir, limits: { maxDepth: 2 } });
    expect(shallow.detections).toEqual([]);
    expect(shallow.limits.map((l) => l.limit)).toEqual(["depth"]);
    const deep = await ds.scan(obj, { spillDir, limits: { maxDepth: 8 } });
    expect(deep.detections).toHaveLength(1);
  });

  test("maxFiles stops opening members and says so", async () => {
    const zip = writeZip(
      Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, data: new Uint8Array([i]) })),
    );
    const r = await ds.scan(zip, { spillDir, limits: { maxFiles: 5 } });
    expect(r.objects).toBe(6);
    expect(r.limits.map((l) => l.limit)).toEqual(["files"]);
  });

  test("a member larger than memoryBytes is inflated to a spill file, scanned, and the file removed", async () => {
    const big = Buffer.alloc(20 * 1024 * 1024, 0x41);
    Buffer.from(MARK, "hex").copy(big, big.length - 100);
    const zip = writeZip([{ name: "big.bin", data: big }]);
    const r = await ds.scan(zip, { spillDir, limits: { memoryBytes: 1024 * 1024 } });
    expect(r.detections.map((d) => d.path.join("/"))).toEqual(["big.bin"]);
    expect(readdirSync(spillDir)).toEqual([]);
  });

  test("legitimately compressible data within the limits is not called a bomb", async () => {
    const text = new TextEncoder().encode("INFO request served in 3 ms\n".repeat(200_000));
    const r = await ds.scan(gzip(text), { spillDir });
    expect(r.detections).toEqual([]);
    expect(r.limits).toEqual([]);
  });
});

describe("archive bombs", () => {
  // A real recursive bomb, built the way 42.zip is: a leaf of zeros deflates ~1000:1,
  // each level holds ten copies of the level below.
  const leafSize = 16 * 1024 * 1024;
  const leafStream = new Uint8Array(zlib.deflateRawSync(new Uint8Array(leafSize), { level: 9 }));
  const leafCrc = zlib.crc32(new Uint8Array(leafSize)) >>> 0;
  const level1 = writeZip(
    Array.from({ length: 10 }, (_, i) => ({
      name: `leaf${i}`,
      deflated: { stream: leafStream, size: leafSize, crc: leafCrc },
    })),
  );
  const level2 = writeZip(Array.from({ length: 10 }, (_, i) => ({ name: `l1-${i}.zip`, data: level1 })));
  const bomb = writeZip(Array.from({ length: 10 }, (_, i) => ({ name: `l2-${i}.zip`, data: level2 })));

  test("a nested high-ratio bomb is reported and memory stays bounded", async () => {
    // 1000 leaves × 16 MiB = 16 GiB from a file of a few hundred KiB.
    expect(bomb.length).toBeLessThan(1024 * 1024);
    const before = process.memoryUsage().rss;
    // CPU time, not wall time: the bound is on the work the bomb causes, which a loaded box
    // (a second suite alongside) does not change.
    const t = process.cpuUsage();
    const r = await ds.scan(bomb, { spillDir, limits: { maxScanBytes: 64 * 1024 * 1024 } });
    const used = process.cpuUsage(t);
    const ms = (used.user + used.system) / 1000;
    const bombs = r.detections.filter((d) => d.name === BOMB_NAME);
    expect(bombs).toHaveLength(1);
    expect(bombs[0]!.kind).toBe("heuristic");
    expect(bombs[0]!.detail).toMatch(/ratio/);
    expect(ms).toBeLessThan(10_000);
    // Far below what the bomb would expand to; only a member's worth was ever held.
    expect(process.memoryUsage().rss - before).toBeLessThan(512 * 1024 * 1024);
  });

  test("a declared expansion far past the limits is reported without inflating", async () => {
    const r = await ds.scan(level1, { spillDir, limits: { maxMemberBytes: 1024 * 1024 } });
    expect(r.detections.map((d) => d.name)).toEqual([BOMB_NAME]);
    expect(r.detections[0]!.detail).toMatch(/declares/);
  });

  test("an overlapping-member (non-recursive) zip bomb is reported and not extracted", async () => {
    const zip = writeOverlappingZip(leafStream, leafSize, leafCrc, 5000);
    const t = performance.now();
    const r = await ds.scan(zip, { spillDir });
    expect(r.detections.map((d) => d.name)).toEqual([BOMB_NAME]);
    expect(r.detections[0]!.detail).toMatch(/overlap/);
    expect(r.objects).toBe(1);
    expect(performance.now() - t).toBeLessThan(2000);
  });
});
