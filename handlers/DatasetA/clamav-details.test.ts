/**
 * ClamAV compatibility details (issue 21): functionality levels honoured
 * against the declared engine level, ClamAV database types the engine cannot
 * read refused by name, self-extracting zips opened. Where clamscan is
 * installed the same files go to it and the detections must be the same.
 */
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { datasetFromSources, sourcesFromView } from "./dataset.ts";
import type { ScanOutcome } from "./engine.ts";
import { ENGINE_FLEVEL } from "./signatures.ts";
import { buildPe, clamscan, clamscanAvailable, Rng, writeZip } from "./testutil.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-dsa-details-"));
process.on("exit", () => rmSync(root, { recursive: true, force: true }));
const names = (r: ScanOutcome) => [...new Set(r.detections.map((d) => d.name))].sort();

/** Scans `files` with the engine and, where installed, clamscan; returns file → names from both. */
async function both(ndb: string, files: Record<string, Uint8Array>) {
  const dir = mkdtempSync(join(root, "case-"));
  mkdirSync(join(dir, "files"));
  writeFileSync(join(dir, "t.ndb"), ndb);
  const ds = datasetFromSources([{ path: "t.ndb", text: ndb }]);
  const ours: Record<string, string[]> = {};
  for (const [name, data] of Object.entries(files)) {
    writeFileSync(join(dir, "files", name), data);
    ours[name] = names(await ds.scan(data, { spillDir: dir }));
  }
  let clam: Record<string, string[]> | null = null;
  if (clamscanAvailable()) {
    const found = clamscan([join(dir, "t.ndb")], join(dir, "files"));
    clam = Object.fromEntries(
      Object.keys(files).map((n) => [n, [...(found.get(join(dir, "files", n)) ?? [])].sort()]),
    );
  }
  return { ds, ours, clam };
}

const hex = (s: string) => Buffer.from(s).toString("hex");

test("functionality levels: signatures outside the engine's level are skipped, as ClamAV 1.4 skips them", async () => {
  expect(ENGINE_FLEVEL).toBe(216);
  const ndb = [
    `F.NoLevel:0:*:${hex("no-level-marker")}`,
    `F.MinBelow:0:*:${hex("min-below-marker")}:100`,
    `F.MinAbove:0:*:${hex("min-above-marker")}:250`,
    `F.MaxBelow:0:*:${hex("max-below-marker")}:1:150`,
    `F.InRange:0:*:${hex("in-range-marker")}:100:300`,
    `F.OpenMin:0:*:${hex("open-min-marker")}::300`,
  ].join("\n");
  const text =
    "no-level-marker min-below-marker min-above-marker max-below-marker in-range-marker open-min-marker";
  const { ds, ours, clam } = await both(`${ndb}\n`, { "levels.txt": new TextEncoder().encode(text) });
  expect(ours["levels.txt"]).toEqual(["F.InRange", "F.MinBelow", "F.NoLevel", "F.OpenMin"]);
  expect(ds.stats.flevelSkipped).toBe(2);
  if (clam) expect(clam).toEqual(ours);
  // lookup.txt may name a skipped signature: it is defined, just not for this engine level.
  const withLookup = datasetFromSources([
    { path: "t.ndb", text: `${ndb}\n` },
    { path: "lookup.txt", text: "F.MinAbove\nF.InRange\n" },
  ]);
  expect(withLookup.stats.lookupSignatures).toBe(1);
}, 20_000);

test("a zip behind a self-extractor stub (PE, or a script) is opened and its members scanned", async () => {
  const rng = new Rng(5);
  const inner = Buffer.concat([rng.bytes(3000), Buffer.from("sfx-member-marker"), rng.bytes(3000)]);
  const zip = writeZip([{ name: "payload.bin", data: inner }]);
  const pe = buildPe({ text: Buffer.from("5589e583ec10c745fc2a000000b801000000c9c3", "hex") });
  const { ours, clam } = await both(`S.Member:0:*:${hex("sfx-member-marker")}\n`, {
    "setup.exe": Buffer.concat([pe, zip]),
    "plain.zip": zip,
  });
  expect(ours["setup.exe"]).toEqual(["S.Member"]);
  expect(ours["plain.zip"]).toEqual(["S.Member"]);
  if (clam) expect(clam).toEqual(ours);
  // The member is named in the detection path, as for a plain zip.
  const ds = datasetFromSources([{ path: "t.ndb", text: `S.Member:0:*:${hex("sfx-member-marker")}\n` }]);
  const sh = new TextEncoder().encode('#!/bin/sh\nexec unzip "$0"\nexit\n');
  const r = await ds.scan(Buffer.concat([sh, zip]), { spillDir: root });
  expect(r.detections.map((d) => d.path)).toEqual([["payload.bin"]]);
}, 20_000);

describe("ClamAV database types DatasetA cannot read are refused by name, never dropped", () => {
  for (const file of ["extra.ldb", "allow.fp", "ignore.ign2"]) {
    test(file, () => {
      const view = {
        files: ["main.ndb", file],
        readText: (p: string) => (p === "main.ndb" ? "T.A:0:*:0011223344\n" : "x\n"),
      } as unknown as Parameters<typeof sourcesFromView>[0];
      expect(() => sourcesFromView(view)).toThrow(
        new RegExp(`${file.replace(".", "\\.")}: ClamAV .* are not supported`),
      );
    });
  }

  test("contentctl datasets check names the file in a pack directory", () => {
    const dir = mkdtempSync(join(root, "packdir-"));
    writeFileSync(join(dir, "main.ndb"), "T.A:0:*:0011223344\n");
    writeFileSync(join(dir, "logic.ldb"), "T.L;Engine:51-255,Target:0;0;0011223344\n");
    const r = Bun.spawnSync(
      [process.execPath, join(import.meta.dir, "../../bin/contentctl.ts"), "datasets", "check", dir],
      { stdout: "pipe", stderr: "pipe", env: { ...process.env, OUTPOST_LOG_QUIET: "1" } },
    );
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr.toString()).toContain(
      `${join(dir, "logic.ldb")}: ClamAV logical signatures (.ldb) are not supported`,
    );
  }, 20_000);
});
