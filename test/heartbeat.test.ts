/**
 * Agent heartbeats: what goes in them, when they are sent, how failures are
 * contained, and — end to end — a real agent reporting to the real fleet
 * endpoint after an update cycle.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventBus } from "../core/agent/events.ts";
import { buildHeartbeat, HeartbeatReporter, loadAgentId, startHeartbeat } from "../core/agent/heartbeat.ts";
import { type Heartbeat, HeartbeatSchema } from "../core/agent/heartbeat-protocol.ts";
import { enrollAgent } from "../core/agent/identity.ts";
import { parseConfig } from "../core/config.ts";
import { sha256Hex } from "../core/crypto/digest.ts";
import { isOutpostError } from "../core/errors.ts";
import { parseReleaseConfig } from "../fleet/config.ts";
import { serveRelease } from "../fleet/server.ts";
import { contentFixture, FakeAgentApi } from "./fakes/agent-api.ts";
import { makeVendor, startAgent, type Vendor } from "./fixtures/vendor.ts";

const TOKEN = "tenant-token-0123456789";

function source() {
  const api = new FakeAgentApi();
  api.items = [contentFixture({ type: "Hmpa_data", version: 7, badVersions: [6] })];
  const events = new EventBus();
  return { status: () => api.status(), events, api };
}

interface Posted {
  url: string;
  auth: string | null;
  body: Heartbeat;
}

function recorder(status = 204, headers: Record<string, string> = {}) {
  const posted: Posted[] = [];
  const fetchImpl = (async (url: string | URL | Request, init?: RequestInit) => {
    posted.push({
      url: String(url),
      auth: new Headers(init?.headers).get("authorization"),
      body: JSON.parse(String(init?.body)),
    });
    return new Response(null, { status, headers });
  }) as typeof fetch;
  return { posted, fetchImpl };
}

describe("buildHeartbeat", () => {
  test("carries versions, health, bad versions, crash and rollback facts, and validates", () => {
    const s = source();
    const hb = buildHeartbeat(
      s.status(),
      {
        crashes: new Map([["Hmpa_data", 2]]),
        rollbacks: new Map([
          ["Hmpa_data", [{ from: 6, to: 5, at: "2026-01-01T00:00:00.000Z", automatic: true }]],
        ]),
        rejected: 3,
        lastRejections: [{ type: "Hmpa_data", code: "UPD_HASH_MISMATCH" }],
      },
      { agentId: "agent-0001", tenant: "acme", sentAt: new Date("2026-01-01T00:01:00Z") },
    );
    expect(HeartbeatSchema.parse(hb)).toEqual(hb);
    expect(hb).toMatchObject({
      agentId: "agent-0001",
      tenant: "acme",
      group: "public-1",
      health: "green",
      rejected: 3,
      content: [{ type: "Hmpa_data", version: 7, badVersions: [6], crashes: 2, handlerState: "loaded" }],
    });
    expect(JSON.stringify(hb).length).toBeLessThan(1024);
  });

  test("reports the group the policy actually polls", () => {
    const s = source();
    const status = {
      ...s.status(),
      policy: {
        cadence: "early" as const,
        assignedGroup: "public-3",
        group: "public-1",
        earlyGroup: "public-1",
        pins: {},
        content: [],
      },
    };
    const hb = buildHeartbeat(
      status,
      { crashes: new Map(), rollbacks: new Map(), rejected: 0, lastRejections: [] },
      {
        agentId: "agent-0001",
        tenant: "acme",
        sentAt: new Date(),
      },
    );
    expect(hb.group).toBe("public-1");
  });
});

describe("HeartbeatReporter", () => {
  test("sends after each update cycle with the tenant token; counts rejections and crashes per type", async () => {
    const s = source();
    const r = recorder();
    const rep = new HeartbeatReporter(s, {
      url: "http://127.0.0.1:1/fleet/heartbeat",
      tenant: "acme",
      token: TOKEN,
      agentId: "agent-0001",
      fetchImpl: r.fetchImpl,
    }).start();
    s.events.emit("update-rejected", { contentType: "Hmpa_data", code: "UPD_HASH_MISMATCH" });
    s.events.emit("crash-loop", { contentType: "Hmpa_data", version: 7 });
    s.events.emit("update-finished", { ok: false });
    await rep.flush();
    expect(r.posted).toHaveLength(1);
    expect(r.posted[0]?.auth).toBe(`Bearer ${TOKEN}`);
    expect(r.posted[0]?.body).toMatchObject({
      rejected: 1,
      lastRejections: [{ type: "Hmpa_data", code: "UPD_HASH_MISMATCH" }],
    });
    expect(r.posted[0]?.body.content[0]?.crashes).toBe(1);
    // A new version resets the crash count: crashes are about the version that runs.
    s.events.emit("content-installed", { contentType: "Hmpa_data", version: 8 });
    s.events.emit("update-finished", { ok: true });
    await rep.stop();
    expect(r.posted[1]?.body.content[0]?.crashes).toBe(0);
    expect(rep.sent).toBe(2);
    s.events.emit("update-finished", { ok: true });
    expect(r.posted).toHaveLength(2); // stopped: no longer listening
  });

  test("a host crash counts for the content types that host serves", async () => {
    const s = source();
    s.api.items = [
      contentFixture({
        type: "A",
        version: 1,
        host: {
          group: "scanner",
          isolation: "process",
          pid: 1,
          hostState: "running",
          restarts: 0,
          lastCrash: null,
        },
      } as never),
      contentFixture({
        type: "B",
        version: 1,
        host: {
          group: "query",
          isolation: "process",
          pid: 2,
          hostState: "running",
          restarts: 0,
          lastCrash: null,
        },
      } as never),
    ];
    const r = recorder();
    const rep = new HeartbeatReporter(s, {
      url: "http://127.0.0.1:1/x",
      tenant: "acme",
      token: TOKEN,
      agentId: "agent-0001",
      fetchImpl: r.fetchImpl,
    }).start();
    s.events.emit("host-crashed", { group: "scanner", reason: "signal" });
    expect(await rep.send()).toBe(true);
    expect(r.posted[0]?.body.content.map((c) => [c.type, c.crashes])).toEqual([
      ["A", 1],
      ["B", 0],
    ]);
    await rep.stop();
  });

  test("a rollback is reported at once, at most once per spacing; the cycle's own heartbeat still goes", async () => {
    const s = source();
    const r = recorder();
    let now = Date.parse("2026-01-01T00:00:00Z");
    const rep = new HeartbeatReporter(s, {
      url: "http://127.0.0.1:1/x",
      tenant: "acme",
      token: TOKEN,
      agentId: "agent-0001",
      fetchImpl: r.fetchImpl,
      now: () => new Date(now),
      urgentSpacingMs: 60_000,
    }).start();
    s.events.emit("content-rolled-back", { contentType: "Hmpa_data", from: 7, to: 6, automatic: true });
    s.events.emit("content-rolled-back", { contentType: "Hmpa_data", from: 6, to: 5, automatic: true });
    await rep.flush();
    expect(r.posted).toHaveLength(1);
    expect(r.posted[0]?.body.content[0]?.rollbacks).toEqual([
      { from: 7, to: 6, at: new Date(now).toISOString(), automatic: true },
    ]);
    now += 61_000;
    s.events.emit("update-finished", { ok: true });
    await rep.stop();
    expect(r.posted).toHaveLength(2);
    expect(r.posted[1]?.body.content[0]?.rollbacks.map((x) => x.from)).toEqual([7, 6]);
  });

  test("refusals and network errors are counted, never thrown; 429 Retry-After is honoured", async () => {
    const s = source();
    let now = 0;
    const r = recorder(429, { "retry-after": "120" });
    const rep = new HeartbeatReporter(s, {
      url: "http://127.0.0.1:1/x",
      tenant: "acme",
      token: TOKEN,
      agentId: "agent-0001",
      fetchImpl: r.fetchImpl,
      now: () => new Date(now),
    });
    expect(await rep.send()).toBe(false);
    expect(await rep.send()).toBe(false);
    expect(r.posted).toHaveLength(1);
    now += 121_000;
    await rep.send();
    expect(r.posted).toHaveLength(2);
    const broken = new HeartbeatReporter(s, {
      url: "http://127.0.0.1:1/x",
      tenant: "acme",
      token: TOKEN,
      agentId: "agent-0001",
      fetchImpl: (async () => {
        throw new Error("connection refused");
      }) as unknown as typeof fetch,
    });
    expect(await broken.send()).toBe(false);
    expect(broken.failed).toBe(1);
  });
});

describe("startHeartbeat and the agent id", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const state = () => {
    const d = mkdtempSync(join(tmpdir(), "outpost-hb-"));
    dirs.push(d);
    return d;
  };

  test("nothing without fleet.url; the token only over https or to loopback; a token is required", async () => {
    const s = source();
    expect(await startHeartbeat(s, parseConfig({ stateDir: state() }))).toBeUndefined();
    const code = async (fleet: Record<string, unknown>) => {
      try {
        await startHeartbeat(s, parseConfig({ stateDir: state(), fleet }));
      } catch (e) {
        return isOutpostError(e) ? e.code : String(e);
      }
      return "started";
    };
    expect(await code({ url: "http://updates.example.com/fleet/heartbeat", token: TOKEN })).toBe(
      "CFG_FLEET_INSECURE",
    );
    expect(await code({ url: "https://updates.example.com/fleet/heartbeat" })).toBe("CFG_FLEET_TOKEN");
    expect(
      await code({ url: "https://updates.example.com/fleet/heartbeat", tokenFile: "/nonexistent/token" }),
    ).toBe("CFG_FLEET_TOKEN");
  });

  test("the agent id is random, made once, kept 0600", () => {
    const dir = state();
    const id = loadAgentId(dir);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(loadAgentId(dir)).toBe(id);
    expect(statSync(join(dir, "agent-id")).mode & 0o777).toBe(0o600);
    expect(loadAgentId(state())).not.toBe(id);
  });
});

describe("a real agent reporting to the real fleet endpoint", () => {
  let vendor: Vendor;
  let root: string;
  beforeAll(async () => {
    vendor = await makeVendor();
    root = mkdtempSync(join(tmpdir(), "outpost-hb-e2e-"));
  });
  afterAll(() => {
    vendor.cleanup();
    rmSync(root, { recursive: true, force: true });
  });

  test("unenrolled, the agent is refused; enrolled, its signed heartbeat tells the server its version and health, in the group the fleet assigned", async () => {
    await vendor.release("TestText", 1, { "data.txt": "one" });
    const server = await serveRelease({
      config: parseReleaseConfig({
        repo: vendor.repo,
        keys: vendor.keysDir,
        stateDir: join(root, "state"),
        fleet: {
          tenants: { acme: { tokenSha256: sha256Hex(new TextEncoder().encode(TOKEN)), group: "public-1" } },
        },
      }),
      port: 0,
      autoTick: false,
    });
    mkdirSync(join(root, "etc"));
    writeFileSync(join(root, "etc", "fleet.token"), `${TOKEN}\n`, { mode: 0o600 });
    const agent = await startAgent(vendor, {
      config: {
        fleet: {
          url: new URL("/fleet/heartbeat", server.url).href,
          tenant: "acme",
          tokenFile: join(root, "etc", "fleet.token"),
        },
      },
    });
    try {
      // Not enrolled: the tenant token alone no longer makes a heartbeat count (I1).
      const unsigned = await startHeartbeat(agent.agent, agent.agent.config);
      expect(await unsigned?.send()).toBe(false);
      await unsigned?.stop();
      expect(await server.fleet.count()).toBe(0);
      const identity = await enrollAgent({
        stateDir: agent.stateDir,
        fleet: server.url.href,
        tenant: "acme",
        token: TOKEN,
      });
      expect(identity.group).toBe("public-1");
      expect(statSync(join(agent.stateDir, "fleet-key.der")).mode & 0o777).toBe(0o600);
      const reporter = await startHeartbeat(agent.agent, agent.agent.config);
      expect(reporter).toBeDefined();
      await agent.agent.update();
      await reporter?.flush();
      const known = await server.fleet.list();
      expect(known).toHaveLength(1);
      expect(known[0]).toMatchObject({
        tenant: "acme",
        group: "public-1",
        health: "green",
        content: { TestText: { version: 1, bad: [], crashes: 0 } },
        enrolled: true,
      });
      expect(known[0]?.id).toBe(`acme/${readFileSync(join(agent.stateDir, "agent-id"), "utf8").trim()}`);
      await reporter?.stop();
    } finally {
      await agent.stop();
      await server.stop();
      rmSync(agent.stateDir, { recursive: true, force: true });
    }
  }, 30_000);
});
