/**
 * ClamAV as the reference: the same signature files and the same objects go
 * to clamscan and to the DatasetA engine, and both must report the same
 * detections for every file. Skipped (loudly) where clamscan is missing;
 * .ci/run installs it.
 */
import { describe, expect, test } from "bun:test";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeTar } from "../../core/package/tar.ts";
import { parseElf } from "../_shared/filetype/filetype.ts";
import { datasetFromSources } from "./dataset.ts";
import {
  buildPe,
  clamscan,
  clamscanAvailable,
  clamscanFirst,
  generateSignatureSet,
  gzip,
  implant,
  Rng,
  writeZip,
} from "./testutil.ts";

const run = clamscanAvailable() ? describe : describe.skip;
if (!clamscanAvailable()) {
  console.warn(
    "DatasetA clamav-compat tests skipped: clamscan is not installed (apt-get install clamav; .ci/run does)",
  );
}

run("same detections as clamscan on the same signatures", () => {
  test("random signatures of every supported shape, hash signatures, executables and archives", async () => {
    const root = mkdtempSync(join(tmpdir(), "outpost-clamcmp-"));
    try {
      const set = generateSignatureSet(2024, 200, 400, { hashBacked: 10, prefix: "Cmp" });
      const rng = new Rng(31337);
      const elf = new Uint8Array(readFileSync("/usr/bin/ls"));
      const info = parseElf(elf)!;
      const ep = info.entry!;
      const hx = (d: Uint8Array, o: number, n: number) => Buffer.from(d.subarray(o, o + n)).toString("hex");
      const textIdx = info.sections.findIndex((s) => s.offset <= ep && ep < s.offset + s.size);
      const pe = buildPe({ text: Buffer.from("5589e583ec10c745fc2a000000b801000000c9c3", "hex") });
      const exeSigs = [
        `Cmp.Elf.EP:6:EP+0:${hx(elf, ep, 16)}`,
        `Cmp.Elf.EP4:6:EP+4,8:${hx(elf, ep + 8, 12)}`,
        `Cmp.Elf.Sx:6:S${textIdx}+32:${hx(elf, info.sections[textIdx]!.offset + 32, 12)}`,
        `Cmp.Elf.Wrong:6:EP+1:${hx(elf, ep, 16)}`,
        "Cmp.Pe.EP:1:EP+0:5589e583ec10c745",
        "Cmp.Pe.S1:1:S1+0:6f7574706f7374",
        "Cmp.Pe.SL:1:SL+8:746573742064",
        "Cmp.Pe.NotElf:6:*:5589e583ec10c745",
        "Cmp.Eof:0:EOF-16:4f55545041535445454e44", // "OUTPASTEEND"
      ];
      const db = join(root, "db");
      mkdirSync(db);
      writeFileSync(join(db, "cmp.hsb"), set.hsb);
      writeFileSync(join(db, "cmp.ndb"), `${set.ndb}${exeSigs.join("\n")}\n`);

      const files = join(root, "files");
      mkdirSync(files);
      for (let i = 0; i < 40; i++) {
        const data = rng.bytes(2000 + rng.int(40_000));
        const hits = rng.int(4);
        for (let h = 0; h < hits; h++) {
          const sig = set.body[rng.int(set.body.length)]!;
          const inst = sig.instance;
          if (inst.length + 10 < data.length) implant(data, inst, rng.int(data.length - inst.length));
        }
        // A near miss: an instance with one fixed byte changed.
        const miss = set.body[rng.int(set.body.length)]!.instance.slice();
        miss[1]! ^= 0x5a;
        implant(data, miss, 0);
        writeFileSync(join(files, `obj${i}.bin`), data);
      }
      for (let i = 0; i < 10; i++) writeFileSync(join(files, `hash${i}.bin`), set.hashes[i]!.data!);
      copyFileSync("/usr/bin/ls", join(files, "ls.elf"));
      writeFileSync(join(files, "tool.exe"), pe);
      writeFileSync(
        join(files, "tail.txt"),
        Buffer.concat([Buffer.from("some text "), Buffer.from("OUTPASTEEND"), Buffer.alloc(5, 0x2e)]),
      );
      const inZip = set.body[5]!.instance;
      writeFileSync(
        join(files, "bundle.zip"),
        writeZip([
          { name: "a.bin", data: Buffer.concat([Buffer.alloc(300, 1), inZip, Buffer.alloc(300, 2)]) },
          { name: "b.txt", data: new TextEncoder().encode("clean member") },
        ]),
      );
      writeFileSync(
        join(files, "bundle.tar.gz"),
        gzip(writeTar([{ path: "x/h.bin", data: set.hashes[3]!.data! }])),
      );

      const reference = clamscan([join(db, "cmp.hsb"), join(db, "cmp.ndb")], files);
      const ds = datasetFromSources([
        { path: "cmp.hsb", text: set.hsb },
        { path: "cmp.ndb", text: `${set.ndb}${exeSigs.join("\n")}\n` },
      ]);
      const ours = new Map<string, Set<string>>();
      for (const name of readdirSync(files)) {
        const r = await ds.scan(new Uint8Array(readFileSync(join(files, name))), { spillDir: root });
        if (r.detections.length) ours.set(join(files, name), new Set(r.detections.map((d) => d.name)));
      }
      const render = (m: Map<string, Set<string>>) =>
        [...m.entries()].map(([f, s]) => `${f.slice(files.length + 1)}: ${[...s].sort().join(",")}`).sort();
      // The comparison only means something if clamscan found plenty.
      expect(reference.size).toBeGreaterThan(30);
      expect(render(ours)).toEqual(render(reference));
      expect(reference.get(join(files, "ls.elf"))).toEqual(
        new Set(["Cmp.Elf.EP", "Cmp.Elf.EP4", "Cmp.Elf.Sx"]),
      );

      // First match (clamscan's default, `agent scan` without --all-matches): the same
      // infected files, and each object's one detection is among clamscan --allmatch's for it.
      const firstRef = clamscanFirst([join(db, "cmp.hsb"), join(db, "cmp.ndb")], files);
      let multi = 0;
      for (const name of readdirSync(files)) {
        const file = join(files, name);
        const r = await ds.scan(new Uint8Array(readFileSync(file)), {
          spillDir: root,
          limits: { firstMatch: true },
        });
        const all = reference.get(file);
        if (all && all.size > 1) multi++;
        const top = r.detections.filter((d) => d.path.length === 0);
        expect(top.length <= 1).toBe(true);
        for (const d of r.detections) expect(all?.has(d.name)).toBe(true);
        expect(r.detections.length > 0).toBe(firstRef.has(file));
      }
      // Several files match more than one signature, so stopping early is exercised.
      expect(multi).toBeGreaterThan(5);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 60_000);
});
