import { afterEach, beforeEach, expect, test } from "bun:test";
import { defineCommand } from "citty";
import { ConfigError, UpdateError } from "../errors.ts";
import { redirectStdio } from "../stdio.ts";
import { EXIT } from "./exit-codes.ts";
import { runCliCode } from "./main.ts";

let out: string;
let err: string;
let restore: () => void;

beforeEach(() => {
  out = "";
  err = "";
  restore = redirectStdio((stream, text) => {
    if (stream === "stdout") out += text;
    else err += text;
  });
});
afterEach(() => restore());

let ran: string[] = [];
const main = defineCommand({
  meta: { name: "tool", description: "test tool" },
  subCommands: {
    ok: defineCommand({ meta: { name: "ok" }, run: () => void ran.push("ok") }),
    found: defineCommand({
      meta: { name: "found" },
      run: () => {
        process.exitCode = EXIT.FOUND;
      },
    }),
    config: defineCommand({
      meta: { name: "config" },
      args: { json: { type: "boolean" } },
      run: () => {
        throw new ConfigError("CFG_INVALID", "agent.json: update.group: bad", { file: "agent.json" });
      },
    }),
    rejected: defineCommand({
      meta: { name: "rejected" },
      run: () => {
        throw new UpdateError("UPD_NOT_FOUND", "index.json not found");
      },
    }),
    crash: defineCommand({
      meta: { name: "crash" },
      run: () => {
        throw new TypeError("x is undefined");
      },
    }),
    needs: defineCommand({
      meta: { name: "needs" },
      args: { in: { type: "string", required: true, description: "input" } },
      run: () => void ran.push("needs"),
    }),
    lazy: () => Promise.resolve(defineCommand({ meta: { name: "lazy" }, run: () => void ran.push("lazy") })),
  },
});

beforeEach(() => {
  ran = [];
});

const run = (...rawArgs: string[]) => runCliCode(main, { version: "tool 1.2.3 (abc)", rawArgs });

test("success is 0 and runs the command (lazy ones too)", async () => {
  expect(await run("ok")).toBe(0);
  expect(await run("lazy")).toBe(0);
  expect(ran).toEqual(["ok", "lazy"]);
});

test("--version prints the version line", async () => {
  expect(await run("--version")).toBe(0);
  expect(out).toBe("tool 1.2.3 (abc)\n");
});

test("a command's own exit code (found something) is kept and does not leak", async () => {
  expect(await run("found")).toBe(EXIT.FOUND);
  expect(process.exitCode ?? 0).toBe(0);
  expect(await run("ok")).toBe(0);
});

test("errors map to exit codes and print `error CODE: message` on stderr", async () => {
  expect(await run("config")).toBe(EXIT.USAGE);
  expect(await run("rejected")).toBe(EXIT.CONTENT);
  expect(await run("crash")).toBe(EXIT.INTERNAL);
  expect(err).toContain("error CFG_INVALID: agent.json: update.group: bad\n");
  expect(err).toContain("error UPD_NOT_FOUND: index.json not found\n");
  expect(err).toContain("error INTERNAL: x is undefined\n");
  expect(out).toBe("");
});

test("--json errors are a JSON object on stdout", async () => {
  expect(await run("config", "--json")).toBe(EXIT.USAGE);
  expect(JSON.parse(out)).toEqual({
    error: { code: "CFG_INVALID", message: "agent.json: update.group: bad", file: "agent.json" },
  });
});

test("usage errors are 2 and show the command's usage", async () => {
  expect(await run("needs")).toBe(EXIT.USAGE);
  expect(await run("nope")).toBe(EXIT.USAGE);
  expect(await run()).toBe(EXIT.USAGE);
  expect(err).toContain("error CLI_USAGE: Missing required argument: --in");
  expect(err).toContain("--in=<in>");
  expect(err).toContain("error CLI_USAGE: Unknown command nope");
  expect(ran).toEqual([]);
});

test("--help is 0 and describes the subcommand asked about", async () => {
  expect(await run("needs", "--help")).toBe(0);
  expect(out).toContain("--in=<in>");
  expect(out).not.toContain("\u001b[");
});
