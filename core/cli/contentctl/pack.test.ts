import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ArgsDef, type CommandDef, runCommand } from "citty";
import { testRegistry } from "../../../test/fixtures/text-handler.ts";
import { sha384Hex } from "../../crypto/digest.ts";
import { initKeys, KEY_FILES } from "../../crypto/keys.ts";
import { captureStdio } from "../../stdio.ts";
import { setAgentWiring } from "../agent/session.ts";
import { EXIT } from "../exit-codes.ts";
import inspect, { type InspectReport } from "./inspect.ts";
import pack from "./pack.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-contentctl-pack-"));
const keys = join(root, "keys");
const other = join(root, "other");
const content = join(root, "content");

beforeAll(async () => {
  // What bin/contentctl.ts wires: the handlers pack validates with (here the test type).
  setAgentWiring({ registry: () => testRegistry() });
  await initKeys(keys);
  await initKeys(other);
  mkdirSync(join(content, "rules"), { recursive: true });
  writeFileSync(join(content, "rules", "base.json"), '{"rules":[]}\n');
  writeFileSync(join(content, "README"), "demo\n");
  writeFileSync(join(content, "data.txt"), "hello\n");
});
afterAll(() => rmSync(root, { recursive: true, force: true }));
afterEach(() => {
  process.exitCode = 0;
});

/** Runs a command and returns what it wrote to stdout. */
async function run<T extends ArgsDef>(cmd: CommandDef<T>, rawArgs: string[]): Promise<string> {
  return (await captureStdio(() => runCommand(cmd, { rawArgs }))).stdout;
}

describe("contentctl pack / inspect", () => {
  test("pack --json writes the package and reports its digest and size", async () => {
    const out = join(root, "demo-4.tar");
    const printed = JSON.parse(
      await run(pack, [
        "--type",
        "TestText",
        "--version",
        "4",
        "--keys",
        keys,
        "--out",
        out,
        "--json",
        content,
      ]),
    );
    const bytes = readFileSync(out);
    expect(printed).toEqual({
      file: out,
      type: "TestText",
      version: 4,
      sha384: sha384Hex(bytes),
      size: bytes.length,
      validated: { group: "test", ms: expect.any(Number) },
    });
  });

  test("pack refuses content the agent's handler rejects, with its code, and writes nothing", async () => {
    const bad = join(root, "bad");
    mkdirSync(bad, { recursive: true });
    writeFileSync(join(bad, "data.txt"), "INVALID\n");
    const out = join(root, "bad-1.tar");
    const err = await run(pack, [
      "--type",
      "TestText",
      "--version",
      "1",
      "--keys",
      keys,
      "--out",
      out,
      bad,
    ]).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe("HND_TEST_INVALID");
    expect((err as Error).message).toContain("would be rejected by the agent (validate)");
    expect(existsSync(out)).toBe(false);
    // A defect only load sees is caught too.
    writeFileSync(join(bad, "data.txt"), "CRASH-ON-LOAD\n");
    const load = await run(pack, [
      "--type",
      "TestText",
      "--version",
      "1",
      "--keys",
      keys,
      "--out",
      out,
      bad,
    ]).catch((e: unknown) => e);
    expect((load as Error).message).toContain("(load)");
    expect(existsSync(out)).toBe(false);
  }, 30_000);

  test("pack refuses a type no handler in this build loads", async () => {
    const out = join(root, "unknown-1.tar");
    const err = await run(pack, [
      "--type",
      "Demo_data",
      "--version",
      "1",
      "--keys",
      keys,
      "--out",
      out,
      content,
    ]).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe("HND_UNKNOWN_TYPE");
    expect(existsSync(out)).toBe(false);
  });

  test("pack refuses a version that is not a positive integer", async () => {
    for (const version of ["0", "1e3", "-1", "0x10", "2.5"]) {
      const err = await run(pack, [
        "--type",
        "TestText",
        "--version",
        version,
        "--keys",
        keys,
        "--out",
        join(root, "x.tar"),
        content,
      ]).catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe("CFG_INVALID_ARGUMENT");
    }
  });

  test("inspect --trust verifies and shows manifest, signer and signingTime", async () => {
    const file = join(root, "demo-5.tar");
    await run(pack, ["--type", "TestText", "--version", "5", "--keys", keys, "--out", file, content]);
    const report = JSON.parse(
      await run(inspect, [file, "--trust", join(keys, KEY_FILES.rootCert), "--json"]),
    ) as InspectReport;
    expect(report.verified).toBe(true);
    expect(report.error).toBeNull();
    expect(report.manifest?.files.map((f) => f.path)).toEqual(["README", "data.txt", "rules/base.json"]);
    expect(report.signature?.signerSubject).toContain("Content Signer");
    expect(Date.parse(report.signature?.signingTime ?? "")).toBeGreaterThan(Date.now() - 600_000);
    expect(process.exitCode).toBe(0);

    const human = await run(inspect, [file, "--trust", join(keys, KEY_FILES.rootCert)]);
    expect(human).toContain("verified   yes");
    expect(human).toContain("rules/base.json");
  });

  test("inspect without --trust shows the signer as unverified but still checks the payload", async () => {
    const file = join(root, "demo-6.tar");
    await run(pack, ["--type", "TestText", "--version", "6", "--keys", keys, "--out", file, content]);
    const report = JSON.parse(await run(inspect, [file, "--json"])) as InspectReport;
    expect(report.verified).toBeNull();
    expect(report.signature?.signerSubject).toContain("Content Signer");
    expect(report.error).toBeNull();
    expect(await run(inspect, [file])).toContain("(unverified)");
  });

  test("inspect reports a failed check and sets exit code 3 (content rejected)", async () => {
    const file = join(root, "demo-7.tar");
    await run(pack, ["--type", "TestText", "--version", "7", "--keys", keys, "--out", file, content]);
    const untrusted = JSON.parse(
      await run(inspect, [file, "--trust", join(other, KEY_FILES.rootCert), "--json"]),
    ) as InspectReport;
    expect(untrusted.verified).toBe(false);
    expect(untrusted.error?.code).toBe("SIG_UNTRUSTED_CHAIN");
    expect(untrusted.manifest?.version).toBe(7);
    expect(process.exitCode).toBe(EXIT.CONTENT);

    process.exitCode = 0;
    const garbage = join(root, "garbage.tar");
    writeFileSync(garbage, "not a tar at all");
    const report = JSON.parse(await run(inspect, [garbage, "--json"])) as InspectReport;
    expect(report.error?.code).toBe("PKG_TAR_TRUNCATED");
    expect(report.manifest).toBeNull();
    expect(process.exitCode).toBe(EXIT.CONTENT);
  });
});
