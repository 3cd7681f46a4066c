/**
 * Authenticode against a real signer: osslsigncode signs a PE with RSA and
 * ECDSA certificates made by openssl; the scanner must verify both, name
 * the signer by its certificate's SHA-256 (what openssl prints), and reject
 * a signed file changed after signing.
 */
import { describe, expect, test } from "bun:test";
import "reflect-metadata";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePe } from "../_shared/filetype/filetype.ts";
import { checkAuthenticode } from "./authenticode.ts";
import { datasetFromSources } from "./dataset.ts";
import { buildPe, signedPe } from "./testutil.ts";

const tools = Bun.which("osslsigncode") && Bun.which("openssl");
if (!tools)
  console.warn("authenticode tests skipped: osslsigncode or openssl missing (.ci/run installs them)");
const run = tools ? describe : describe.skip;

run("Authenticode", () => {
  const dir = mkdtempSync(join(tmpdir(), "outpost-authenticode-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

  for (const [label, keyArgs] of [
    ["rsa", ["-newkey", "rsa:2048"]],
    ["ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]],
  ] as const) {
    test(`an osslsigncode ${label} signature verifies and names its signer`, async () => {
      const { signed, thumbprint } = signedPe(dir, [...keyArgs], label);
      const r = await checkAuthenticode(signed, parsePe(signed)!);
      expect(r).toMatchObject({ status: "valid", signer: { thumbprint, digestAlgorithm: "sha256" } });
      if (r.status === "valid") expect(r.signer.subject).toContain(`CN=${label} Publisher`);
    });
  }

  test("a byte changed after signing breaks the signature (A3); an unsigned file is unsigned", async () => {
    const { signed } = signedPe(dir, ["-newkey", "rsa:2048"], "tamper");
    const bad = signed.slice();
    bad[0x212]! ^= 0xff;
    expect(await checkAuthenticode(bad, parsePe(bad)!)).toMatchObject({
      status: "invalid",
      reason: expect.stringMatching(/^A3/),
    });
    const plain = buildPe();
    expect(await checkAuthenticode(plain, parsePe(plain)!)).toEqual({ status: "unsigned" });
  });

  test("the scanner reports signed executables it finds, inside archives too", async () => {
    const { signed, thumbprint } = signedPe(dir, ["-newkey", "rsa:2048"], "scan");
    const { writeZip } = await import("./testutil.ts");
    const ds = datasetFromSources([{ path: "x.ndb", text: "X:0:*:0011223344556677\n" }]);
    const r = await ds.scan(writeZip([{ name: "setup/tool.exe", data: signed }]), { spillDir: dir });
    expect(r.executables).toHaveLength(1);
    expect(r.executables[0]).toMatchObject({
      path: ["setup/tool.exe"],
      kind: "pe",
      authenticode: { status: "valid", signer: { thumbprint } },
    });
  });
});
