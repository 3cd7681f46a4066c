/** The `telemetry` config section: off by default, servers pinned in a strict form. */
import { expect, test } from "bun:test";
import { parseConfig } from "../config.ts";
import { parseAllowedServer } from "./config.ts";

test("telemetry is off by default and pins no server", () => {
  const c = parseConfig({});
  expect(c.telemetry.enabled).toBe(false);
  expect(c.telemetry.allowedServers).toEqual([]);
  expect(c.logs.enabled).toBe(true);
  expect(c.selfHelp.allowedDirs).toEqual(["/var/log"]);
});

test("allowedServers: host, https://host[:port], http://host[:port]; anything else is a config error naming the field", () => {
  for (const bad of ["ftp://x.example", "https://x.example/path", "user@x.example", "x.example:99999x", ""]) {
    expect(() => parseConfig({ telemetry: { allowedServers: [bad] } }, "agent.json")).toThrow(
      /agent\.json: telemetry\.allowedServers\.0/,
    );
  }
  expect(parseAllowedServer("T.example.com")).toEqual({ scheme: "https", host: "t.example.com" });
  expect(parseAllowedServer("http://localhost:8080")).toEqual({
    scheme: "http",
    host: "localhost",
    port: 8080,
  });
});

test("self-help allowedDirs must be absolute", () => {
  expect(() => parseConfig({ selfHelp: { allowedDirs: ["var/log"] } })).toThrow(/selfHelp\.allowedDirs/);
});
