/**
 * Administrator policy in the update decision (rules P1-P3): pure selection
 * rules first, then whole cycles with the real client, store, host and a
 * folder repository published by the real publisher.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeAgentApi } from "../../test/fakes/agent-api.ts";
import { makeVendor, testRegistry, type Vendor } from "../../test/fixtures/vendor.ts";
import { contentPolicy, describePolicy, policyStatus } from "../agent/policy.ts";
import { renderStatus } from "../cli/agent/render.ts";
import { parseConfig } from "../config.ts";
import { TrustStore } from "../crypto/cms.ts";
import { InProcessHost } from "../host/in-process.ts";
import { log } from "../log.ts";
import type { IndexEntry } from "../repo/index-format.ts";
import { publish } from "../repo/publish.ts";
import { ContentStore } from "../store/store.ts";
import { runUpdateCycle } from "./client.ts";
import { UpdateMemory } from "./memory.ts";
import { DirTransport } from "./transport.ts";
import { type ContentPolicy, policyGroup, selectEntry } from "./trusted-state.ts";

const sha = (c: string) => c.repeat(96);
const e = (version: number, previous?: number): IndexEntry => ({
  version,
  path: `packages/T/T-${version}-${sha("a").slice(0, 16)}.tar`,
  size: 100,
  sha384: sha(String(version % 10)),
  ...(previous
    ? { previous: { version: previous, path: `packages/T/T-${previous}-x.tar`, size: 90, sha384: sha("b") } }
    : {}),
});
const at = (version: number) => ({ version, signingTime: "2026-01-01T00:00:00.000Z" });
const general: ContentPolicy = { cadence: "general", pins: {} };
const n1: ContentPolicy = { cadence: "pinned-n-1", pins: {} };
const version = (s: ReturnType<typeof selectEntry>) => ("entry" in s ? s.entry.version : s.hold);

describe("selectEntry (pure)", () => {
  test("general and no policy take the current entry", () => {
    expect(version(selectEntry("T", e(5, 4), at(4), general))).toBe(5);
    expect(version(selectEntry("T", e(5, 4), at(4), undefined))).toBe(5);
  });

  test("P2: pinned-n-1 takes the previous entry, holds when already past it, bootstraps from current", () => {
    expect(version(selectEntry("T", e(5, 4), at(3), n1))).toBe(4);
    expect(version(selectEntry("T", e(5, 4), at(4), n1))).toBe(4); // decide() then says up-to-date
    expect(version(selectEntry("T", e(5, 4), at(5), n1))).toBe("held-back");
    expect(version(selectEntry("T", e(5), at(3), n1))).toBe("held-back");
    expect(version(selectEntry("T", e(5), undefined, n1))).toBe(5);
    expect(version(selectEntry("T", e(5, 4), undefined, n1))).toBe(4);
  });

  test("P1: a pin takes exactly the pinned version from current or previous, never moves back, wins over cadence", () => {
    const pin4: ContentPolicy = { cadence: "general", pins: { T: 4 } };
    expect(version(selectEntry("T", e(5, 4), at(3), pin4))).toBe(4);
    expect(version(selectEntry("T", e(4, 3), at(3), pin4))).toBe(4);
    expect(version(selectEntry("T", e(4, 3), at(4), pin4))).toBe("up-to-date");
    expect(version(selectEntry("T", e(6, 5), at(3), pin4))).toBe("pinned");
    expect(version(selectEntry("T", e(6, 5), at(5), pin4))).toBe("pinned");
    expect(version(selectEntry("Other", e(6, 5), at(3), pin4))).toBe(6);
    expect(version(selectEntry("T", e(5, 4), at(3), { cadence: "pinned-n-1", pins: { T: 5 } }))).toBe(5);
    const held = selectEntry("T", e(6, 5), at(3), pin4);
    expect("hold" in held && held.detail).toContain("not the pinned v4");
  });

  test("P3: early polls the early group when one is configured", () => {
    expect(policyGroup("public-3", { cadence: "early", earlyGroup: "public-1", pins: {} })).toBe("public-1");
    expect(policyGroup("public-3", { cadence: "early", pins: {} })).toBe("public-3");
    expect(policyGroup("public-3", { cadence: "general", earlyGroup: "public-1", pins: {} })).toBe(
      "public-3",
    );
  });
});

describe("update cycles under a policy", () => {
  let vendor: Vendor;
  let trust: TrustStore;
  const dirs: string[] = [];

  beforeAll(async () => {
    vendor = await makeVendor();
    trust = await TrustStore.load(vendor.trustPath);
    const publishTo = async (group: string, v: number, text: string) =>
      publish({
        repo: vendor.repo,
        group,
        keys: vendor.keysDir,
        packageBytes: await vendor.pack("TestText", v, { "data.txt": text }),
      });
    await publishTo("public-3", 1, "one");
    await publishTo("public-3", 2, "two");
    await publishTo("public-3", 3, "three");
    await publishTo("public-1", 4, "four");
  });

  afterAll(() => {
    vendor.cleanup();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  function agentWith(policy: Record<string, unknown>) {
    const stateDir = mkdtempSync(join(tmpdir(), "outpost-policy-"));
    dirs.push(stateDir);
    const config = parseConfig({
      stateDir,
      update: { repo: vendor.repo, group: "public-3", trust: vendor.trustPath },
      policy,
    });
    const registry = testRegistry();
    const store = new ContentStore(stateDir);
    store.open();
    const memory = new UpdateMemory(stateDir);
    const host = new InProcessHost(registry, log, {
      workDirFor: (g) => join(stateDir, "hosts", g),
      emit: () => {},
    });
    const cycle = () =>
      runUpdateCycle(
        {
          transport: new DirTransport(vendor.repo),
          trust,
          store,
          host,
          registry,
          memory,
          policy: contentPolicy(config),
          log,
          now: () => new Date(),
          limits: { indexMaxBytes: 1 << 20, timeoutMs: 10_000, minBytesPerSecond: 0 },
        },
        config.update.group,
      );
    return { config, store, memory, cycle };
  }

  test("general installs the group's current version", async () => {
    const a = agentWith({});
    const r = await a.cycle();
    expect(r.installed).toEqual([{ type: "TestText", version: 3, previousVersion: null }]);
  });

  test("pinned-n-1 installs the previous version and reports it as its target", async () => {
    const a = agentWith({ cadence: "pinned-n-1" });
    const r = await a.cycle();
    expect(r.ok).toBe(true);
    expect(r.installed).toEqual([{ type: "TestText", version: 2, previousVersion: null }]);
    const again = await a.cycle();
    expect(again.installed).toEqual([]);
    expect(again.unchanged).toEqual(["TestText"]);
    const status = policyStatus(a.config, a.memory, [
      { type: "TestText", version: 2, signingTime: new Date().toISOString() },
    ]);
    expect(status).toMatchObject({ cadence: "pinned-n-1", group: "public-3" });
    expect(status.content).toEqual([
      { type: "TestText", installed: 2, offered: 3, previous: 2, target: 2, held: null },
    ]);
  });

  test("a pin that the group no longer offers holds without a rejection or alert", async () => {
    const a = agentWith({ pins: { TestText: 1 } });
    const r = await a.cycle();
    expect(r.ok).toBe(true);
    expect(r.rejected).toEqual([]);
    expect(r.installed).toEqual([]);
    expect(a.store.installed("TestText")).toBeNull();
    const status = describePolicy(a.config, { index: null, content: [] });
    expect(status.pins).toEqual({ TestText: 1 });
  });

  test("early polls the early group and verifies its index as that group (R2)", async () => {
    const a = agentWith({ cadence: "early", earlyGroup: "public-1" });
    const r = await a.cycle();
    expect(r.group).toBe("public-1");
    expect(r.installed).toEqual([{ type: "TestText", version: 4, previousVersion: null }]);
    expect(policyStatus(a.config, a.memory, []).group).toBe("public-1");
  });

  test("config refuses an unknown cadence or a bad pin", () => {
    expect(() => parseConfig({ policy: { cadence: "sometimes" } })).toThrow(/policy\.cadence/);
    expect(() => parseConfig({ policy: { pins: { TestText: 0 } } })).toThrow(/policy\.pins/);
    expect(parseConfig({}).policy).toEqual({ cadence: "general", pins: {} });
  });

  test("agent status renders the policy and what it targets", () => {
    const a = agentWith({ cadence: "pinned-n-1", pins: { Other: 3 } });
    const status = {
      ...new FakeAgentApi().status(),
      policy: describePolicy(a.config, {
        index: {
          schema: 1,
          group: "public-3",
          serial: 1,
          issued: new Date().toISOString(),
          expires: new Date(Date.now() + 3600_000).toISOString(),
          content: {
            TestText: {
              version: 3,
              path: "packages/TestText/TestText-3-0123456789abcdef.tar",
              size: 10,
              sha384: "a".repeat(96),
              previous: {
                version: 2,
                path: "packages/TestText/TestText-2-0123456789abcdef.tar",
                size: 10,
                sha384: "b".repeat(96),
              },
            },
          },
        },
        content: [],
      }),
    };
    const text = renderStatus(status);
    expect(text).toMatch(/policy\s+cadence pinned-n-1, polls public-3/);
    expect(text).toMatch(/pins\s+Other=v3/);
    expect(text).toMatch(/TestText\s+3\s+2\s+2\s+-/);
  });
});
