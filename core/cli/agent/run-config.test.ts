import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { absolutePaths, RUN_CONFIG_FILE, recordRunConfig } from "./run-config.ts";
import { agentConfigFile, loadAgentConfig } from "./session.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-run-config-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function stateWithRecord(name: string, config: Record<string, unknown> | null, overrides = {}) {
  const state = join(root, name, "state");
  mkdirSync(state, { recursive: true });
  let file: string | undefined;
  if (config) {
    file = join(root, name, "agent.json");
    writeFileSync(file, JSON.stringify(config));
  }
  recordRunConfig(state, file, overrides);
  return { state, file };
}

test("without a record, --state alone gets the built-in defaults", () => {
  const state = join(root, "bare");
  mkdirSync(state, { recursive: true });
  expect(loadAgentConfig({ state }).update.trust).toBe("/etc/outpost/root.pem");
  expect(agentConfigFile({ state })).toBeNull();
});

test("--state alone finds the trust store and config `agent run` used", () => {
  const { state, file } = stateWithRecord("recorded", {
    update: { repo: "http://127.0.0.1:1", group: "g1", trust: "/keys/root.pem" },
  });
  const c = loadAgentConfig({ state });
  expect(c.update).toMatchObject({ repo: "http://127.0.0.1:1", group: "g1", trust: "/keys/root.pem" });
  expect(c.stateDir).toBe(state);
  expect(agentConfigFile({ state })).toBe(file!);
});

test("command-line overrides `agent run` had are kept, made absolute, and later flags still win", () => {
  const cwd = process.cwd();
  const { state } = stateWithRecord(
    "overrides",
    null,
    absolutePaths({ update: { trust: "rel/root.pem", repo: "http://h/x" } }),
  );
  expect(loadAgentConfig({ state }).update.trust).toBe(join(cwd, "rel/root.pem"));
  expect(loadAgentConfig({ state }).update.repo).toBe("http://h/x");
  expect(loadAgentConfig({ state }, { update: { trust: "/other.pem" } }).update.trust).toBe("/other.pem");
});

test("an explicit --config wins over the record", () => {
  const { state } = stateWithRecord("explicit", { update: { trust: "/recorded.pem" } });
  const mine = join(root, "explicit", "mine.json");
  writeFileSync(mine, JSON.stringify({ update: { trust: "/mine.pem" } }));
  expect(loadAgentConfig({ state, config: mine }).update.trust).toBe("/mine.pem");
});

test("a corrupt record is refused with the file named, not silently ignored", () => {
  const state = join(root, "corrupt");
  mkdirSync(state, { recursive: true });
  writeFileSync(join(state, RUN_CONFIG_FILE), JSON.stringify({ config: 7, overrides: {} }));
  expect(() => loadAgentConfig({ state })).toThrow(expect.objectContaining({ code: "CFG_INVALID" }));
  expect(() => loadAgentConfig({ state })).toThrow(RUN_CONFIG_FILE);
});
