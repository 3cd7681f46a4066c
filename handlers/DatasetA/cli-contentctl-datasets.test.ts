/** The vendor commands as a vendor runs them: contentctl datasets / rep, as processes. */
import { expect, test } from "bun:test";
import "reflect-metadata";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TrustStore } from "../../core/crypto/cms.ts";
import { initKeys } from "../../core/crypto/keys.ts";
import { openPackage } from "../../core/package/open.ts";
import { ReputationDb, validateReputation } from "../LocalRepData/reader.ts";
import { datasetFromSources } from "./dataset.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-dsa-cli-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
const contentctl = (...args: string[]) => {
  const r = Bun.spawnSync([process.execPath, join(import.meta.dir, "../../bin/contentctl.ts"), ...args], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, OUTPOST_LOG_QUIET: "1" },
  });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
};

test("datasets check and pack compile before signing; the package opens and holds the files", async () => {
  writeFileSync(join(dir, "main.ndb"), "V.Mark:0:*:6f7574706f7374\nV.Exe:6:EP+0:7f454c46\n");
  writeFileSync(join(dir, "main.hsb"), `${"ab".repeat(32)}:10:V.Hash\n`);
  writeFileSync(join(dir, "lookup.txt"), "V.Mark\n");
  const check = contentctl("datasets", "check", "main.ndb", "main.hsb", "--lookup", "lookup.txt", "--json");
  expect(check.code).toBe(0);
  expect(JSON.parse(check.out)).toMatchObject({ hashSignatures: 1, bodySignatures: 2, lookupSignatures: 1 });

  writeFileSync(join(dir, "bad.ndb"), "V.Bad:0:*:00zz11\n");
  const bad = contentctl(
    "datasets",
    "pack",
    "bad.ndb",
    "--version",
    "1",
    "--keys",
    "keys",
    "--out",
    "x.tar",
    "--json",
  );
  expect(bad.code).toBe(3);
  expect(JSON.parse(bad.out).error.code).toBe("HND_DATASETA_INVALID");

  await initKeys(join(dir, "keys"));
  const pack = contentctl(
    "datasets",
    "pack",
    "main.ndb",
    "main.hsb",
    "--lookup",
    "lookup.txt",
    "--version",
    "3",
    "--keys",
    "keys",
    "--out",
    "DatasetA-3.tar",
    "--json",
  );
  expect(pack.code).toBe(0);
  const trust = await TrustStore.load(join(dir, "keys", "root.pem"));
  const pkg = await openPackage(new Uint8Array(readFileSync(join(dir, "DatasetA-3.tar"))), trust, {
    file: "DatasetA-3.tar",
    now: new Date(),
    expectedType: "DatasetA",
  });
  // The signature files as given, plus the compiled index agents load instead of compiling again.
  expect([...pkg.files.keys()].sort()).toEqual(["lookup.txt", "main.hsb", "main.ndb", "signatures.idx"]);
  expect(pkg.manifest.version).toBe(3);
  const fromIndex = datasetFromSources([...pkg.files].map(([path, bytes]) => ({ path, bytes })));
  expect(fromIndex.stats).toMatchObject({ hashSignatures: 1, bodySignatures: 2, lookupSignatures: 1 });
}, 30_000);

test("rep build from lists and from a directory", () => {
  writeFileSync(
    join(dir, "hashes.txt"),
    `# os files\n${"11".repeat(32)} 90 system\n${"22".repeat(32)} 10 pua\n`,
  );
  writeFileSync(join(dir, "signers.txt"), `${"33".repeat(32)} 95 application Contoso Ltd\n`);
  const r = contentctl(
    "rep",
    "build",
    "--hashes",
    "hashes.txt",
    "--signers",
    "signers.txt",
    "--from-dir",
    "/usr/bin",
    "--score",
    "85",
    "--out",
    "rep.bin",
    "--json",
  );
  expect(r.code).toBe(0);
  const summary = JSON.parse(r.out);
  expect(summary.signerEntries).toBe(1);
  expect(summary.hashEntries).toBeGreaterThan(100);
  const bytes = new Uint8Array(readFileSync(join(dir, "rep.bin")));
  validateReputation(bytes, { file: "rep.bin" });
  const db = ReputationDb.from(bytes, { file: "rep.bin" });
  expect(db.byHash("22".repeat(32))).toMatchObject({ score: 10, class: "pua" });
  expect(db.bySigner("33".repeat(32))).toMatchObject({ name: "Contoso Ltd", band: "high" });
  const ls = new Bun.CryptoHasher("sha256").update(readFileSync("/usr/bin/ls")).digest("hex");
  expect(db.byHash(ls)).toMatchObject({ score: 85, class: "system" });
  const bad = contentctl("rep", "build", "--hashes", "signers.txt", "--out", "x.bin", "--json");
  expect(bad.code).toBe(2);
  expect(JSON.parse(bad.out).error.message).toContain("signers.txt:1: unexpected text after the class");
  writeFileSync(join(dir, "broken.txt"), "xyz 10\n");
  expect(contentctl("rep", "build", "--hashes", "broken.txt", "--out", "x.bin").code).toBe(2);
}, 30_000);
