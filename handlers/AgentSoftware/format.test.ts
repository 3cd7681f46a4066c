import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { AGENT_FILE, checkExecutable, checkSoftware, MAX_AGENT_BYTES, SOFTWARE_FILE } from "./format.ts";

const enc = (s: string) => new TextEncoder().encode(s);
/** A real ELF of this machine (x86-64 here), as the packages carry. */
const elf = new Uint8Array(readFileSync("/bin/true"));
const desc = (o: Record<string, unknown>) =>
  enc(JSON.stringify({ version: "1.4.0", platform: "linux-x64", ...o }));
const pkg = (files: Record<string, Uint8Array>) => (p: string) => files[p];

function withHeader(patch: (b: Uint8Array, v: DataView) => void): Uint8Array {
  const b = elf.slice();
  patch(b, new DataView(b.buffer));
  return b;
}

describe("AgentSoftware package rules", () => {
  test("a real executable with its descriptor passes", () => {
    const r = checkSoftware(pkg({ [SOFTWARE_FILE]: desc({}), [AGENT_FILE]: elf }), "linux-x64");
    expect(r).toEqual({
      ok: true,
      descriptor: { version: "1.4.0", platform: "linux-x64" },
      bytes: elf.byteLength,
    });
  });

  test.each([
    ["SW1", "descriptor missing", pkg({ [AGENT_FILE]: elf }), "missing"],
    ["SW1", "descriptor not JSON", pkg({ [SOFTWARE_FILE]: enc("{"), [AGENT_FILE]: elf }), "not JSON"],
    [
      "SW1",
      "version not semver",
      pkg({ [SOFTWARE_FILE]: desc({ version: "latest" }), [AGENT_FILE]: elf }),
      "version",
    ],
    [
      "SW1",
      "unknown field",
      pkg({ [SOFTWARE_FILE]: desc({ postInstall: "rm -rf /" }), [AGENT_FILE]: elf }),
      "postInstall",
    ],
    ["SW2", "executable missing", pkg({ [SOFTWARE_FILE]: desc({}) }), "missing"],
    [
      "SW3",
      "a shell script",
      pkg({ [SOFTWARE_FILE]: desc({}), [AGENT_FILE]: enc("#!/bin/sh\necho hi\n".padEnd(80)) }),
      "not an ELF",
    ],
    [
      "SW3",
      "32-bit ELF",
      pkg({
        [SOFTWARE_FILE]: desc({}),
        [AGENT_FILE]: withHeader((b) => {
          b[4] = 1;
        }),
      }),
      "64-bit",
    ],
    [
      "SW3",
      "a relocatable object",
      pkg({ [SOFTWARE_FILE]: desc({}), [AGENT_FILE]: withHeader((_, v) => v.setUint16(16, 1, true)) }),
      "ELF type 1",
    ],
    [
      "SW4",
      "an arm64 binary declared x64",
      pkg({ [SOFTWARE_FILE]: desc({}), [AGENT_FILE]: withHeader((_, v) => v.setUint16(18, 0xb7, true)) }),
      "does not match",
    ],
  ])("%s: %s", (rule, _what, read, reason) => {
    const r = checkSoftware(read, "linux-x64");
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.rule).toBe(rule as never);
      expect(r.reason).toContain(reason);
    }
  });

  test("SW4: a build for another platform than this agent's is refused", () => {
    const arm = withHeader((_, v) => v.setUint16(18, 0xb7, true));
    const r = checkSoftware(
      pkg({ [SOFTWARE_FILE]: desc({ platform: "linux-arm64" }), [AGENT_FILE]: arm }),
      "linux-x64",
    );
    expect(r).toMatchObject({
      ok: false,
      rule: "SW4",
      reason: "built for linux-arm64; this agent runs on linux-x64",
    });
  });

  test("SW2: an executable above the cap is refused before its header is looked at", () => {
    expect(checkExecutable(elf, MAX_AGENT_BYTES + 1, "linux-x64", "linux-x64")).toMatchObject({
      ok: false,
      rule: "SW2",
    });
    expect(checkExecutable(elf, elf.byteLength, "linux-x64", "linux-x64")).toBeNull();
  });
});
