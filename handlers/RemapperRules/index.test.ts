/**
 * End to end (issue 15): tenant policy set on the fleet side → the agent
 * picks it up in its next update cycle (conditional GET, signature checked
 * against its trust store) → the RemapperRules handler, in its sandboxed
 * `config` host process, maps it → the supervisor applies it; a second rule
 * file that fails keeps its old values while the first applies, and the
 * failure shows in status and on the event stream. Flags ride along.
 */
import { afterEach, beforeEach, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AgentEvent } from "../../core/agent/events.ts";
import { bundlePath } from "../../core/effective/bundle.ts";
import type { ConfigChange } from "../../core/effective/service.ts";
import type { ContentHandler } from "../../core/handler/contract.ts";
import { HandlerRegistry } from "../../core/handler/registry.ts";
import {
  disposeAgent,
  makeVendor,
  startAgent,
  type TestAgent,
  type Vendor,
} from "../../test/fixtures/vendor.ts";
import { updateTenantBundle } from "../_shared/tenant/bundle.ts";
import { flagsHandler } from "../Flags/index.ts";
import { builtinGroups } from "../groups.ts";
import { remapperRulesHandler } from "./index.ts";

setDefaultTimeout(60_000);

const TENANT = "acme";

const policy = (lookups: string, timeout: string, memoryMb: string) => `<?xml version="1.0"?>
<policy>
  <liveProtection enabled="${lookups}">
    <timeout>${timeout}</timeout>
  </liveProtection>
  <queries>
    <watchdog memoryMb="${memoryMb}"/>
  </queries>
</policy>
`;

const RULES = {
  "lp.json": JSON.stringify({
    schema: 1,
    document: "tp.xml",
    rules: [
      {
        id: "lp-on",
        select: "/policy/liveProtection/@enabled",
        convert: { fn: "bool" },
        target: "liveProtection.lookups",
      },
      {
        id: "lp-timeout",
        select: "/policy/liveProtection/timeout",
        convert: { fn: "duration", unit: "ms", min: 50, max: 30000 },
        target: "liveProtection.timeoutMs",
      },
    ],
  }),
  "wd.json": JSON.stringify({
    schema: 1,
    document: "tp.xml",
    rules: [
      {
        id: "wd-mem",
        select: "/policy/queries/watchdog/@memoryMb",
        convert: { fn: "int", min: 16, max: 4096 },
        target: "query.watchdog.memoryMb",
      },
    ],
  }),
};

const SUPPLEMENT = JSON.stringify({
  schema: 1,
  releases: [{ agentVersions: ">=0.1.0 <1.0.0", flags: { onAccessBlock: "available", mlLive: "off" } }],
});

const registry = () => {
  const r = new HandlerRegistry();
  for (const g of builtinGroups) r.registerGroup(g);
  // Built-in: the host process finds them through handlers/host-registry.ts, as in production
  // (which is also what preloads RemapperRules' parsers before the sandbox closes).
  r.register(remapperRulesHandler as ContentHandler);
  r.register(flagsHandler as ContentHandler);
  return r;
};

let vendor: Vendor;
let t: TestAgent | undefined;
beforeEach(async () => {
  vendor = await makeVendor();
});
afterEach(async () => {
  await disposeAgent(t);
  t = undefined;
  vendor.cleanup();
});

const setPolicy = (xml: string) =>
  updateTenantBundle({ repo: vendor.repo, tenant: TENANT, keys: vendor.keysDir }, (b) => {
    b.documents = [{ name: "tp.xml", version: (b.documents[0]?.version ?? 0) + 1, xml }];
  });
const setFlag = (flag: string, value: "on" | "off") =>
  updateTenantBundle({ repo: vendor.repo, tenant: TENANT, keys: vendor.keysDir }, (b) => {
    b.flags[flag] = value;
  });

function record(agent: TestAgent["agent"]): AgentEvent[] {
  const seen: AgentEvent[] = [];
  agent.events.subscribe((e) => seen.push(e));
  return seen;
}

test("fleet policy → next cycle → config changes; a failing rule file keeps its old values while the other applies", async () => {
  await vendor.release("RemapperRules", 1, RULES);
  await vendor.release("Flags", 1, { "flags.json": SUPPLEMENT });
  await setPolicy(policy("true", "2s", "300"));
  t = await startAgent(vendor, { registry, config: { fleet: { tenant: TENANT } } });
  const changes: ConfigChange[][] = [];
  t.agent.effective.subscribe(["liveProtection.*"], (c) => changes.push(c));
  const events = record(t.agent);

  const first = await t.agent.update();
  expect(first.installed.map((i) => i.type).sort()).toEqual(["Flags", "RemapperRules"]);
  expect(t.agent.content().map((c) => [c.type, c.handlerState, c.host?.group])).toEqual([
    ["Flags", "loaded", "config"],
    ["RemapperRules", "loaded", "config"],
  ]);
  let cfg = t.agent.effective.current();
  expect([cfg.liveProtection.lookups, cfg.liveProtection.timeoutMs, cfg.query.watchdog.memoryMb]).toEqual([
    true,
    2000,
    300,
  ]);
  expect(t.agent.effective.snapshot().values.find((v) => v.key === "liveProtection.lookups")?.origin).toEqual(
    {
      source: "policy",
      file: "lp.json",
      rule: "lp-on",
      document: "tp.xml",
      line: 3,
    },
  );
  expect(changes.at(-1)?.map((c) => c.key)).toEqual(["liveProtection.lookups", "liveProtection.timeoutMs"]);
  // The base config the agent started with is untouched: overlays live in the effective view only.
  expect(t.agent.config.liveProtection.lookups).toBe(false);

  // Second policy: lp.json's values are good, wd.json's memoryMb is out of range.
  await setPolicy(policy("false", "750ms", "99999"));
  await t.agent.update();
  cfg = t.agent.effective.current();
  expect([cfg.liveProtection.lookups, cfg.liveProtection.timeoutMs]).toEqual([false, 750]);
  expect(cfg.query.watchdog.memoryMb).toBe(300);
  const reason = t.agent.status().healthDetails?.find((r) => r.source === "policy:wd.json");
  expect(reason).toMatchObject({ level: "amber", code: "POL_VALUE_OUT_OF_RANGE" });
  expect(reason?.message).toContain("tp.xml:7: rule wd-mem");
  expect(reason?.message).toContain("previous values kept");
  expect(events.filter((e) => e.type === "policy-rule-failed").at(-1)).toMatchObject({
    file: "wd.json",
    rule: "wd-mem",
    code: "POL_VALUE_OUT_OF_RANGE",
    document: "tp.xml",
    line: 7,
  });

  // Unchanged bundle: a conditional GET answers 304, nothing is re-fetched or re-verified.
  const fetched = events.filter((e) => e.type === "policy-fetched").length;
  await t.agent.update();
  expect(events.filter((e) => e.type === "policy-fetched").length).toBe(fetched);

  // Fixing the policy clears the failure.
  await setPolicy(policy("false", "750ms", "512"));
  await t.agent.update();
  expect(t.agent.effective.current().query.watchdog.memoryMb).toBe(512);
  expect(t.agent.status().healthDetails?.some((r) => r.source.startsWith("policy:"))).toBe(false);

  // Restart: the last accepted overlays are in force before any cycle runs.
  await t.restart();
  expect(t.agent.effective.current().liveProtection.timeoutMs).toBe(750);
});

test("flags: supplement × service by the seed's table; unreachable or missing → last known service value", async () => {
  await vendor.release("Flags", 1, { "flags.json": SUPPLEMENT });
  t = await startAgent(vendor, { registry, config: { fleet: { tenant: TENANT } } });
  await t.agent.update();
  // Supplement available, service silent and never heard: off (F4).
  expect(t.agent.effective.flags.enabled("onAccessBlock")).toBe(false);

  await setFlag("onAccessBlock", "on");
  await setFlag("mlLive", "on");
  const heard: boolean[] = [];
  t.agent.effective.flags.onChange("onAccessBlock", (on) => heard.push(on));
  await t.agent.update();
  expect(t.agent.effective.flags.enabled("onAccessBlock")).toBe(true); // available + on (F3)
  expect(t.agent.effective.flags.enabled("mlLive")).toBe(false); // off + on (F1)
  expect(t.agent.effective.flags.enabled("neverHeardOf")).toBe(false); // not in the supplement (F5)
  expect(heard).toEqual([true]);

  // The service disappears (bundle gone): the last word it gave still counts.
  const file = join(vendor.repo, bundlePath(TENANT));
  renameSync(file, `${file}.away`);
  await t.agent.update();
  const row = t.agent.effective.flags.list().find((f) => f.flag === "onAccessBlock");
  expect(row).toMatchObject({
    supplement: "available",
    service: null,
    serviceSource: "last-known",
    enabled: true,
  });
  renameSync(`${file}.away`, file);

  // The service says off: off (F2).
  await setFlag("onAccessBlock", "off");
  await t.agent.update();
  expect(t.agent.effective.flags.enabled("onAccessBlock")).toBe(false);
  expect(heard).toEqual([true, false]);
});

test("B1/B4: a tampered or replayed tenant bundle is refused; the last accepted policy stays", async () => {
  await vendor.release("RemapperRules", 1, RULES);
  const old = await setPolicy(policy("true", "2s", "300"));
  const oldBytes = readFileSync(join(vendor.repo, bundlePath(TENANT)));
  const oldSig = readFileSync(join(vendor.repo, `${bundlePath(TENANT)}.p7s`));
  await setPolicy(policy("true", "3s", "300"));
  t = await startAgent(vendor, { registry, config: { fleet: { tenant: TENANT } } });
  await t.agent.update();
  expect(t.agent.effective.current().liveProtection.timeoutMs).toBe(3000);

  // Tampered: the document changed after signing.
  const file = join(vendor.repo, bundlePath(TENANT));
  writeFileSync(file, readFileSync(file, "utf8").replace("3s", "9s"));
  await t.agent.update();
  expect(t.agent.effective.current().liveProtection.timeoutMs).toBe(3000);
  expect(t.agent.status().healthDetails?.find((r) => r.source === "policy-fetch")).toMatchObject({
    code: "POL_BUNDLE_REFUSED",
  });
  expect(t.agent.effective.snapshot().fleet.lastError?.code).toBe("SIG_DIGEST_MISMATCH");

  // Replayed: a validly signed but older bundle (serial 1 < 2).
  expect(old.serial).toBe(1);
  writeFileSync(`${file}.p7s`, oldSig);
  writeFileSync(file, oldBytes);
  await t.agent.update();
  expect(t.agent.effective.snapshot().fleet.lastError?.code).toBe("POL_BUNDLE_ROLLBACK");
  expect(t.agent.effective.current().liveProtection.timeoutMs).toBe(3000);
});

test("over HTTP (contentctl serve): the bundle is fetched with If-None-Match and a 304 skips it", async () => {
  const { serveRepo } = await import("../../core/repo/serve.ts");
  const { HttpTransport } = await import("../../core/update/transport.ts");
  await vendor.release("RemapperRules", 1, RULES);
  await setPolicy(policy("true", "2s", "300"));
  const server = serveRepo({ repo: vendor.repo, port: 0, hostname: "127.0.0.1" });
  try {
    const seen: { ifNoneMatch: string | null; status: number }[] = [];
    const counting: typeof fetch = Object.assign(
      async (input: string | URL | Request, init?: RequestInit) => {
        const res = await fetch(input, init);
        if (String(input).endsWith(bundlePath(TENANT))) {
          seen.push({ ifNoneMatch: new Headers(init?.headers).get("if-none-match"), status: res.status });
        }
        return res;
      },
      { preconnect: fetch.preconnect },
    );
    const url = `http://127.0.0.1:${server.port}`;
    t = await startAgent(vendor, {
      registry,
      repo: url,
      transport: new HttpTransport(url, counting),
      config: { fleet: { tenant: TENANT } },
    });
    await t.agent.update();
    await t.agent.update();
    expect(seen.map((s) => s.status)).toEqual([200, 304]);
    expect(seen[0]?.ifNoneMatch).toBeNull();
    expect(seen[1]?.ifNoneMatch).toBeTruthy();
    expect(t.agent.effective.current().liveProtection.timeoutMs).toBe(2000);
  } finally {
    server.stop(true);
  }
});
