/**
 * The sink registry at the config edge: a section's keys become sinks of the
 * registered kinds, each with its own queue; an unknown kind or a bad value
 * is refused with CFG_INVALID naming the key and the config file.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildSinks, sinkKinds } from "./kinds.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-registry-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const ctx = { queueRoot: root, where: "query.results", file: "/etc/outpost/agent.json" };

describe("sink registry", () => {
  test("registers postgres, clickhouse and syslog; several at once, each its own queue", async () => {
    expect(sinkKinds()).toEqual(["clickhouse", "postgres", "syslog"]);
    const sinks = buildSinks(
      {
        flushSeconds: 2,
        postgres: { url: "postgres://u@127.0.0.1:1/db", table: "r" },
        syslog: { host: "127.0.0.1", port: 1, queueMaxBytes: 2 * 1024 * 1024 },
      },
      ctx,
      ["flushSeconds"],
    );
    expect(sinks.map((s) => [s.kind, s.name])).toEqual([
      ["postgres", "postgres:r"],
      ["syslog", "syslog:relp://127.0.0.1:1"],
    ]);
    for (const s of sinks) await s.close();
  });

  test("an unknown kind is refused with the key and the file", () => {
    expect(() => buildSinks({ kafka: { brokers: "x" } }, ctx)).toThrow(
      expect.objectContaining({ code: "CFG_INVALID", file: "/etc/outpost/agent.json" }),
    );
    expect(() => buildSinks({ kafka: { brokers: "x" } }, ctx)).toThrow(
      /query\.results\.kafka: not a sink kind/,
    );
  });

  test("a bad value names its path", () => {
    expect(() => buildSinks({ syslog: { host: "h", port: 70000 } }, ctx)).toThrow(
      /query\.results\.syslog\.port/,
    );
    expect(() => buildSinks({ syslog: { host: "h" } }, ctx)).toThrow(
      /query\.results\.syslog\.port: missing: no port in `host`/,
    );
    expect(() => buildSinks({ postgres: { url: "mysql://x" } }, ctx)).toThrow(
      /query\.results\.postgres\.url/,
    );
    expect(() => buildSinks({ clickhouse: { url: "http://c", queueMaxBytes: 5 } }, ctx)).toThrow(
      /query\.results\.clickhouse\.queueMaxBytes/,
    );
  });
});
