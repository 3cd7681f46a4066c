/**
 * Test helpers for Lua content: a content key, encrypted rule payloads in
 * the package layout, and an agent running the Lua handlers on a temp state
 * dir with the key provisioned. Tests only.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent } from "../../../core/agent/runtime.ts";
import { type AgentConfigInput, parseConfig } from "../../../core/config.ts";
import type { ContentHandler } from "../../../core/handler/contract.ts";
import { HandlerRegistry } from "../../../core/handler/registry.ts";
import { TEST_GROUP, type Vendor } from "../../../test/fixtures/vendor.ts";
import { builtinGroups } from "../../groups.ts";
import { encryptRule, type KeyringFile, newKeyring } from "./crypto.ts";
import { type RuleLimits, RuleLimitsSchema, type RulesManifest } from "./format.ts";
import { installKeyring } from "./keys.ts";

export interface TestKey {
  file: KeyringFile;
  id: string;
  key: Uint8Array;
}

export function testKey(id = "test-1"): TestKey {
  const file = newKeyring(id);
  return { file, id, key: new Uint8Array(Buffer.from(file.keys[0]!.key, "base64")) };
}

/** Package payload files for Lua content: rules.json + one encrypted file per rule. */
export function rulesPayload(
  contentType: string,
  rules: Record<string, string>,
  key: Pick<TestKey, "id" | "key">,
  opts: { limits?: Partial<RuleLimits>; settings?: Record<string, unknown>; tamper?: string } = {},
): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  const list: RulesManifest["rules"] = [];
  for (const [name, source] of Object.entries(rules)) {
    const file = `lua/${name}.lua.enc`;
    const plain = new TextEncoder().encode(source);
    const sealed = encryptRule(plain, key, { contentType, path: file });
    if (opts.tamper === name) sealed[sealed.length - 20]! ^= 0x01;
    files[file] = sealed;
    list.push({ name, file, size: plain.length });
  }
  const manifest: RulesManifest = {
    schema: 1,
    format: "outpost-lua/1",
    contentType,
    encryption: { alg: "AES-256-GCM", keyId: key.id },
    limits: RuleLimitsSchema.parse(opts.limits ?? {}),
    rules: list,
    settings: opts.settings ?? {},
  };
  files["rules.json"] = new TextEncoder().encode(JSON.stringify(manifest));
  return files;
}

export interface LuaTestAgent {
  agent: Agent;
  stateDir: string;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

/** Where host processes import each Lua handler from (they are not built into `bun test`). */
const MODULES: Record<string, string> = {
  Behavior: new URL("../../Behavior/index.ts", import.meta.url).href,
  ProductRulesFeed: new URL("../../ProductRulesFeed/index.ts", import.meta.url).href,
  RepairKit: new URL("../../RepairKit/index.ts", import.meta.url).href,
  APPFEED: new URL("../../APPFEED/index.ts", import.meta.url).href,
  USERAPPFEED: new URL("../../USERAPPFEED/index.ts", import.meta.url).href,
};

/** An agent with the given handlers and the content key installed in every Lua group. */
export async function startLuaAgent(
  vendor: Vendor,
  handlers: ContentHandler[],
  opts: { key?: TestKey; stateDir?: string; config?: AgentConfigInput } = {},
): Promise<LuaTestAgent> {
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), "outpost-lua-"));
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  if (opts.key) {
    const keyFile = join(stateDir, "provisioned-keys.json");
    writeFileSync(keyFile, JSON.stringify(opts.key.file), { mode: 0o600 });
    installKeyring(stateDir, keyFile);
  }
  const config = parseConfig({
    ...opts.config,
    stateDir,
    update: { repo: vendor.repo, group: TEST_GROUP, trust: vendor.trustPath, ...opts.config?.update },
  });
  const make = () => {
    const registry = new HandlerRegistry();
    for (const g of builtinGroups) registry.registerGroup(g);
    for (const h of handlers) registry.register(h, MODULES[h.manifest.name]);
    return new Agent({ config, registry });
  };
  const t: LuaTestAgent = {
    agent: make(),
    stateDir,
    stop: () => t.agent.stop(),
    async restart() {
      await t.agent.stop();
      t.agent = make();
      await t.agent.start();
    },
  };
  await t.agent.start();
  return t;
}
