import { describe, expect, test } from "bun:test";
import { judgeNewAgent } from "./systemd.ts";

describe("the live probe's verdict on a new agent", () => {
  test("healthy: its cycle succeeded and no host crash-loops", () => {
    expect(judgeNewAgent({ ok: true, rejected: [] }, [{ group: "scanner", state: "running" }])).toBeNull();
  });
  test("a failed update cycle, with the codes it rejected", () => {
    expect(judgeNewAgent({ ok: false, rejected: [{ code: "SIG_CHAIN_INVALID" }] }, [])).toBe(
      "its update cycle failed (SIG_CHAIN_INVALID)",
    );
  });
  test("a crash-looping host group", () => {
    expect(
      judgeNewAgent({ ok: true, rejected: [] }, [
        { group: "query", state: "running" },
        { group: "behavior", state: "crash-looping" },
      ]),
    ).toBe("host behavior is crash-looping");
  });
});
