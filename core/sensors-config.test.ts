import { describe, expect, test } from "bun:test";
import { parseConfig } from "./config.ts";

describe("onAccess and sensors config (a contract used outside this repo)", () => {
  test("defaults", () => {
    const c = parseConfig({});
    expect(c.onAccess).toEqual({
      enabled: false,
      mode: "detect",
      paths: ["/"],
      excludePaths: [],
      maxFileBytes: 32 * 1024 * 1024,
      timeoutMs: 1000,
    });
    expect(c.sensors).toEqual({
      process: "auto",
      files: { paths: [] },
      network: "auto",
      nflogGroup: 3471,
      pollIntervalMs: 1000,
    });
  });

  test("the documented keys are accepted beside stateDir and update", () => {
    const c = parseConfig({
      stateDir: "/tmp/x",
      update: { repo: "/tmp/repo" },
      onAccess: {
        enabled: true,
        mode: "block",
        paths: ["/srv"],
        excludePaths: ["/srv/cache"],
        maxFileBytes: 1024,
        timeoutMs: 500,
      },
      sensors: { process: "netlink", files: { paths: ["/etc/cron.d"] } },
    });
    expect(c.onAccess.mode).toBe("block");
    expect(c.sensors.files.paths).toEqual(["/etc/cron.d"]);
  });

  test("bad input names the field", () => {
    expect(() => parseConfig({ onAccess: { mode: "kill" } }, "agent.json")).toThrow(
      /agent.json: onAccess.mode/,
    );
    expect(() => parseConfig({ onAccess: { paths: ["relative"] } }, "agent.json")).toThrow(
      /onAccess.paths.0/,
    );
    expect(() => parseConfig({ sensors: { process: "ebpf" } }, "agent.json")).toThrow(/sensors.process/);
    expect(() => parseConfig({ onAccess: { unknown: 1 } }, "agent.json")).toThrow(/onAccess/);
  });
});
