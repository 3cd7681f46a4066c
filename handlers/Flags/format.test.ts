/** Flags Supplement checks L1–L3, one test each; refusals name file and line. */
import { expect, test } from "bun:test";
import { OutpostError } from "../../core/errors.ts";
import { inRange, parseSupplement } from "./format.ts";

const text = (releases: unknown[]) => JSON.stringify({ schema: 1, releases }, null, 2);
const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    if (e instanceof OutpostError) return { code: e.code, message: e.message, line: e.details?.line };
    throw e;
  }
  throw new Error("expected a refusal");
};

test("the release covering this agent's version gives the flags", () => {
  const t = text([
    { agentVersions: ">=0.1.0 <0.2.0", flags: { onAccessBlock: "available" } },
    { agentVersions: ">=0.2.0", flags: { onAccessBlock: "available", ips: "available" } },
  ]);
  expect(parseSupplement(t, "flags.json", "0.1.0-dev")).toEqual({
    flags: { onAccessBlock: "available" },
    release: 0,
  });
  expect(parseSupplement(t, "flags.json", "0.2.5").flags).toEqual({
    onAccessBlock: "available",
    ips: "available",
  });
});

test("L3: a flags file for another agent version is refused naming file and line", () => {
  const t = text([{ agentVersions: ">=2.0.0 <3.0.0", flags: { onAccessBlock: "available" } }]);
  expect(refusal(() => parseSupplement(t, "flags.json", "0.1.0"))).toMatchObject({
    code: "FLAG_VERSION_MISMATCH",
    line: 5,
    message: expect.stringMatching(/^flags\.json:5: no release covers agent version 0\.1\.0/),
  });
});

test("L3: overlapping releases are refused rather than guessed", () => {
  const t = text([
    { agentVersions: ">=0.1.0", flags: {} },
    { agentVersions: "<1.0.0", flags: {} },
  ]);
  expect(refusal(() => parseSupplement(t, "flags.json", "0.1.0"))).toMatchObject({
    code: "FLAG_AMBIGUOUS_RANGE",
    line: 9,
  });
});

test("L1/L2: bad words, bad names, bad ranges and bad JSON are refused", () => {
  expect(
    refusal(() =>
      parseSupplement(text([{ agentVersions: ">=0.1.0", flags: { x: "on" } }]), "f.json", "0.1.0"),
    ).code,
  ).toBe("FLAG_INVALID");
  expect(
    refusal(() =>
      parseSupplement(text([{ agentVersions: ">=0.1.0", flags: { "Bad-Name": "off" } }]), "f.json", "0.1.0"),
    ).code,
  ).toBe("FLAG_INVALID");
  expect(
    refusal(() => parseSupplement(text([{ agentVersions: "~0.1", flags: {} }]), "f.json", "0.1.0")).code,
  ).toBe("FLAG_INVALID");
  expect(refusal(() => parseSupplement("{", "f.json", "0.1.0")).code).toBe("FLAG_SYNTAX");
  expect(inRange(">=0.1.0 <0.1.5", "0.1.4")).toBe(true);
  expect(inRange(">=0.1.0 <0.1.5", "0.1.5")).toBe(false);
  expect(inRange("=1.2.3", "1.2.3-rc1")).toBe(true);
});
