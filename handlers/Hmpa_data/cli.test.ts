import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand } from "citty";
import { HandlerError } from "../../core/errors.ts";
import { redirectStdio } from "../../core/stdio.ts";
import { buildAllowlistFromText } from "./build.ts";
import { type CallHandler, makeHmpaCommand } from "./cli-agent-hmpa.ts";
import hmpaBuild from "./cli-contentctl-hmpa-build.ts";
import hmpaDataHandler from "./index.ts";
import { Allowlist, validateAllowlist } from "./reader.ts";
import { contentView, recordingCaps } from "./testutil.ts";

let dir: string;
let printed: string[];
let restoreStdio: () => void;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "hmpa-cli-"));
  printed = [];
  restoreStdio = redirectStdio((stream, text) => {
    if (stream === "stdout") printed.push(text.replace(/\n$/, ""));
  });
});

afterEach(() => {
  restoreStdio();
  rmSync(dir, { recursive: true, force: true });
});

const TEXT =
  "# two mitigations, one duplicate spelling\nStackPivot:00AA\nStackPivot:00aa\nCallerCheck:1234\n";

describe("hmpa-build", () => {
  test("writes a valid allowlist.bin and prints a summary", async () => {
    const input = join(dir, "thumbprints.txt");
    const output = join(dir, "out", "allowlist.bin");
    writeFileSync(input, TEXT);
    await runCommand(hmpaBuild, { rawArgs: ["--in", input, "--out", output] });
    const bytes = new Uint8Array(readFileSync(output));
    validateAllowlist(bytes);
    expect(Allowlist.from(bytes).has("CallerCheck:1234")).toBe(true);
    expect(printed).toHaveLength(1);
    expect(printed[0]).toStartWith(`wrote ${output}: 2 entries from 3 thumbprints (1 collapsed)`);
  });

  test("--json prints the summary as one JSON object", async () => {
    const input = join(dir, "thumbprints.txt");
    const output = join(dir, "allowlist.bin");
    writeFileSync(input, TEXT);
    const { result } = await runCommand(hmpaBuild, { rawArgs: ["--in", input, "--out", output, "--json"] });
    const summary = JSON.parse(printed[0]!);
    expect(summary).toEqual(result);
    expect(summary).toMatchObject({
      in: input,
      out: output,
      thumbprints: 3,
      entries: 2,
      collapsed: 1,
      bucketBits: 0,
    });
    expect(summary.bytes).toBe(readFileSync(output).length);
    expect(summary.sha256).toBe(new Bun.CryptoHasher("sha256").update(readFileSync(output)).digest("hex"));
  });

  test("a bad line fails with its line number and writes nothing", async () => {
    const input = join(dir, "thumbprints.txt");
    const output = join(dir, "allowlist.bin");
    writeFileSync(input, `StackPivot:01\n${"z".repeat(4097)}\n`);
    const run = runCommand(hmpaBuild, { rawArgs: ["--in", input, "--out", output] });
    await expect(run).rejects.toThrow(`${input}:2:`);
    expect(() => readFileSync(output)).toThrow();
  });
});

describe("hmpa check", () => {
  async function agentCall(): Promise<{ call: CallHandler; calls: unknown[][] }> {
    const content = contentView({ "allowlist.bin": buildAllowlistFromText(TEXT) });
    await hmpaDataHandler.validate(content);
    const live = await hmpaDataHandler.load(content, recordingCaps().caps);
    const calls: unknown[][] = [];
    return {
      calls,
      call: async (type, method, args) => {
        calls.push([type, method, args]);
        return hmpaDataHandler.call!(live, method, args);
      },
    };
  }

  test("prints allowed / not allowed and passes the thumbprint to the Hmpa_data handler", async () => {
    const { call, calls } = await agentCall();
    const cmd = makeHmpaCommand(call);
    await runCommand(cmd, { rawArgs: ["check", "StackPivot:00AA"] });
    await runCommand(cmd, { rawArgs: ["check", "StackPivot:00AB"] });
    expect(printed).toEqual(["allowed", "not allowed"]);
    expect(calls[0]).toEqual(["Hmpa_data", "check", { thumbprint: "StackPivot:00AA" }]);
  });

  test("--json prints the handler's result", async () => {
    const { call } = await agentCall();
    await runCommand(makeHmpaCommand(call), { rawArgs: ["check", "CallerCheck:1234", "--json"] });
    expect(JSON.parse(printed[0]!)).toEqual({ thumbprint: "CallerCheck:1234", allowed: true });
  });

  test("agent errors propagate; a malformed answer is HND_HMPA_BAD_RESULT", async () => {
    const failing = makeHmpaCommand(async () => {
      throw new HandlerError("HND_NOT_LOADED", "Hmpa_data is not installed");
    });
    await expect(runCommand(failing, { rawArgs: ["check", "x"] })).rejects.toThrow(
      "Hmpa_data is not installed",
    );
    const odd = makeHmpaCommand(async () => ({ allowed: "yes" }));
    const e = await runCommand(odd, { rawArgs: ["check", "x"] }).catch((err) => err);
    expect(e).toBeInstanceOf(HandlerError);
    expect(e.code).toBe("HND_HMPA_BAD_RESULT");
    expect(printed).toEqual([]);
  });
});
