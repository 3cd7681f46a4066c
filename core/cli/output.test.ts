import { describe, expect, test } from "bun:test";
import { ControlError } from "../control/errors.ts";
import { ConfigError, HandlerError, OutpostError, PackageError, StoreError, UpdateError } from "../errors.ts";
import { EXIT, type ExitCode, exitCodeFor } from "./exit-codes.ts";
import { errorObject, renderFields, renderTable, UsageError } from "./output.ts";

describe("exitCodeFor", () => {
  const cases: [unknown, ExitCode][] = [
    [new UsageError("CLI_USAGE", "x"), EXIT.USAGE],
    [new ConfigError("CFG_INVALID", "x"), EXIT.USAGE],
    [new HandlerError("HND_UNKNOWN_TYPE", "x"), EXIT.USAGE],
    [new HandlerError("HND_HMPA_BAD_ARGS", "x"), EXIT.USAGE],
    [new UpdateError("UPD_NOT_FOUND", "x"), EXIT.CONTENT],
    [new PackageError("PKG_DIGEST_MISMATCH", "x"), EXIT.CONTENT],
    [new StoreError("STORE_NO_LKG", "x"), EXIT.CONTENT],
    [new HandlerError("HND_NOT_LOADED", "x"), EXIT.CONTENT],
    [new ControlError("CTL_NOT_RUNNING", "x"), EXIT.UNREACHABLE],
    [new StoreError("AGENT_LOCKED", "x"), EXIT.UNREACHABLE],
    [new ControlError("CTL_UNAUTHORIZED", "x"), EXIT.INTERNAL],
    [new OutpostError("INTERNAL", "x"), EXIT.INTERNAL],
    [new TypeError("undefined is not a function"), EXIT.INTERNAL],
    [Object.assign(new Error("ENOENT: no such file"), { code: "ENOENT" }), EXIT.USAGE],
    [Object.assign(new Error("Missing required argument: --in"), { name: "CLIError" }), EXIT.USAGE],
    ["a string", EXIT.INTERNAL],
  ];
  for (const [err, code] of cases) {
    test(`${(err as { code?: string }).code ?? (err as Error).name ?? String(err)} → ${code}`, () => {
      expect(exitCodeFor(err)).toBe(code);
    });
  }
});

test("errorObject keeps code, message and file, and nothing else", () => {
  expect(
    errorObject(new PackageError("PKG_BAD_TAR", "x.opkg: truncated", { file: "x.opkg", details: { a: 1 } })),
  ).toEqual({
    error: { code: "PKG_BAD_TAR", message: "x.opkg: truncated", file: "x.opkg" },
  });
  expect(errorObject(new RangeError("boom"))).toEqual({ error: { code: "INTERNAL", message: "boom" } });
  const cli = Object.assign(new Error("Unknown command \u001b[36mbogus\u001b[39m"), { name: "CLIError" });
  expect(errorObject(cli)).toEqual({ error: { code: "CLI_USAGE", message: "Unknown command bogus" } });
});

test("renderTable aligns columns and marks empty cells", () => {
  const out = renderTable(
    ["TYPE", "VERSION", "LKG"],
    [
      ["Hmpa_data", 12, null],
      ["X", undefined, 3],
    ],
  );
  expect(out.split("\n")).toEqual([
    "TYPE       VERSION  LKG",
    "Hmpa_data  12       -",
    "X          -        3",
  ]);
});

test("renderFields", () => {
  expect(
    renderFields([
      ["health", "GREEN"],
      ["next run", null],
    ]),
  ).toBe("health    GREEN\nnext run  -");
});
