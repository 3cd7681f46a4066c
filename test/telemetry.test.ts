/**
 * Telemetry end to end: a real agent with TELEMSUP content installed through
 * an update cycle, its telemetry service, and the fleet service
 * (`serveRelease`, as `contentctl serve --release` runs it) as receiver —
 * through a receiver outage (connection refused) and an ambiguous failure
 * (the receiver stored the report but the answer was lost). Every report
 * built arrives exactly once.
 */
import { afterEach, beforeEach, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAgentId } from "../core/agent/heartbeat.ts";
import { sha256Hex } from "../core/crypto/digest.ts";
import type { ContentHandler } from "../core/handler/contract.ts";
import { HandlerRegistry } from "../core/handler/registry.ts";
import { parseReleaseConfig, type ReleaseConfig } from "../fleet/config.ts";
import { type ReleaseServer, serveRelease } from "../fleet/server.ts";
import { TelemetryStore } from "../fleet/telemetry/store.ts";
import { builtinGroups } from "../handlers/groups.ts";
import { telemetryView } from "../handlers/TELEMSUP/cli-agent-telemetry.ts";
import { telemsupHandler } from "../handlers/TELEMSUP/index.ts";
import { TelemetryService } from "../handlers/TELEMSUP/service.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "./fixtures/vendor.ts";

setDefaultTimeout(60_000);
const TOKEN = "tenant-token-0123456789abcdef";
const OPERATOR = "operator-token-0123456789abcdef";

let vendor: Vendor;
let root: string;
let config: ReleaseConfig;
let server: ReleaseServer | undefined;
let t: TestAgent | undefined;
let svc: TelemetryService | undefined;

/** The reports the fleet service stored, read from its fleet database (where telemetry lives). */
async function storedReports(s: ReleaseServer, limit: number) {
  return new TelemetryStore((await s.engine.db()).driver).reports(limit);
}

function registry(): HandlerRegistry {
  const r = new HandlerRegistry();
  for (const g of builtinGroups) r.registerGroup(g);
  return r.register(telemsupHandler as ContentHandler);
}

async function until(what: string, f: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

beforeEach(async () => {
  vendor = await makeVendor();
  root = mkdtempSync(join(tmpdir(), "outpost-telemetry-"));
  config = parseReleaseConfig({
    repo: vendor.repo,
    keys: vendor.keysDir,
    stateDir: join(root, "fleet"),
    groups: [{ name: "public-1", promote: "manual", soakMinutes: 60 }],
    fleet: { tenants: { acme: { tokenSha256: sha256Hex(new TextEncoder().encode(TOKEN)) } } },
    console: { operators: { alice: { tokenSha256: sha256Hex(new TextEncoder().encode(OPERATOR)) } } },
  });
});
afterEach(async () => {
  await svc?.stop();
  await t?.stop();
  await server?.stop();
  svc = undefined;
  t = undefined;
  server = undefined;
  rmSync(root, { recursive: true, force: true });
  vendor.cleanup();
});

test("reports reach the fleet service once each, through an outage and a lost answer", async () => {
  server = await serveRelease({ config, port: 0, autoTick: false });
  const port = server.port;
  await vendor.release("TELEMSUP", 1, {
    "telemsup.json": JSON.stringify({
      additionalHeaders: "x-outpost-test:e2e",
      port: 0,
      resourceRoot: "telemetry/v1",
      server: "localhost",
      verb: "PUT",
      interval: 300,
    }),
  });
  t = await startAgent(vendor, {
    registry,
    config: {
      hosts: { isolation: "in-process" },
      fleet: { token: TOKEN },
      telemetry: { enabled: true, allowedServers: [`http://localhost:${port}`], maxBackoffSeconds: 0.2 },
    },
  });
  expect((await t.agent.update()).installed.map((i) => i.type)).toEqual(["TELEMSUP"]);

  // The network between agent and receiver: normal, or the answer is lost after the receiver acted.
  let loseAnswers = 0;
  const seen: { method: string; key: string | null; header: string | null }[] = [];
  const fetchImpl = (async (url: string | URL | Request, init?: RequestInit) => {
    const h = new Headers(init?.headers);
    seen.push({
      method: init?.method ?? "GET",
      key: h.get("idempotency-key"),
      header: h.get("x-outpost-test"),
    });
    const res = await fetch(url, init);
    if (loseAnswers > 0) {
      loseAnswers--;
      throw new TypeError("connection reset by peer (answer lost)");
    }
    return res;
  }) as typeof fetch;

  svc = new TelemetryService({ agent: t.agent, config: t.agent.config, fetchImpl, minBackoffMs: 5 });
  svc.start();
  expect((await svc.refresh())?.url).toBe(`http://localhost:${port}/telemetry/v1/${loadAgentId(t.stateDir)}`);

  const built: string[] = [];
  built.push((await svc.reportNow()).reportId);
  expect(await svc.flush(15_000)).toBe(true);

  // Outage: the fleet service is down; reports queue on disk.
  await server.stop();
  server = undefined;
  built.push((await svc.reportNow()).reportId);
  built.push((await svc.reportNow()).reportId);
  await until("a failed attempt", () => (svc?.stats().queue?.failures ?? 0) > 0);
  expect(svc.stats().queue?.queuedLines).toBe(2);
  svc.checkDelivery();
  expect(t.agent.health.get("telemetry", "TELEM_UPLOAD_FAILING")?.message).toMatch(
    /^telemetry: 2 report\(s\) waiting for localhost:\d+; last error: /,
  );
  // What `agent telemetry` shows from the state dir meanwhile.
  const during = telemetryView(t.stateDir, t.agent.config.telemetry);
  expect(during).toMatchObject({ enabled: true, queued: { reports: 2 }, rejected: 0 });
  expect(during.target?.url).toStartWith(`http://localhost:${port}/telemetry/v1/`);

  // Back, but the first answer is lost: the receiver stored the batch, the agent retries it.
  server = await serveRelease({ config, port, autoTick: false });
  loseAnswers = 1;
  svc.retryNow();
  expect(await svc.flush(20_000)).toBe(true);
  built.push((await svc.reportNow()).reportId);
  expect(await svc.flush(15_000)).toBe(true);

  const stored = (await storedReports(server, 100)).map((r) => r.report.reportId);
  expect(stored.sort()).toEqual([...built].sort());
  expect(new Set(stored).size).toBe(stored.length);
  expect(telemetryView(t.stateDir, t.agent.config.telemetry).queued).toEqual({ reports: 0, bytes: 0 });
  svc.checkDelivery();
  expect(t.agent.health.get("telemetry", "TELEM_UPLOAD_FAILING")).toBeUndefined();
  // A retried body carried the same key as its first attempt; content's verb and header were used.
  const keys = seen.map((s) => s.key);
  expect(keys.length).toBeGreaterThan(new Set(keys).size);
  expect(seen.every((s) => s.method === "PUT" && s.header === "e2e")).toBe(true);
  // The fleet view is an operator's: anonymous and tenant-token requests are refused, a signed-in one served.
  const viewUrl = `http://localhost:${port}/console/telemetry.json`;
  for (const headers of [{}, { authorization: `Bearer ${TOKEN}` }] as Record<string, string>[]) {
    const refused = await fetch(viewUrl, { headers });
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { code: string }).code).toBe("FLEET_CONSOLE_LOGIN");
  }
  const page = await fetch(`http://localhost:${port}/console/telemetry`, { redirect: "manual" });
  expect(page.status).toBe(401);
  await page.arrayBuffer();
  const signedIn = await fetch(viewUrl, { headers: { authorization: `Bearer ${OPERATOR}` } });
  expect(signedIn.status).toBe(200);
  const view = (await signedIn.json()) as { reports: number; agents: number };
  expect(view).toMatchObject({ reports: built.length, agents: 1 });
});

test("content naming a server outside the allow-list is refused; the previous target stays", async () => {
  const doc = (server: string) => ({
    "telemsup.json": JSON.stringify({ port: 0, resourceRoot: "t", server, verb: "POST", interval: 3600 }),
  });
  await vendor.release("TELEMSUP", 1, doc("telemetry.outpost.example"));
  t = await startAgent(vendor, {
    registry,
    config: {
      hosts: { isolation: "in-process" },
      telemetry: { enabled: true, allowedServers: ["telemetry.outpost.example"] },
    },
  });
  await t.agent.update();
  svc = new TelemetryService({
    agent: t.agent,
    config: t.agent.config,
    fetchImpl: (async () => new Response(null, { status: 201 })) as unknown as typeof fetch,
  });
  svc.start();
  expect((await svc.refresh())?.url).toStartWith("https://telemetry.outpost.example/t/");

  await vendor.release("TELEMSUP", 2, doc("exfil.evil.example"));
  await t.agent.update();
  const target = await svc.refresh();
  expect(target?.url).toStartWith("https://telemetry.outpost.example/t/");
  const reason = t.agent.health.get("telemetry", "TELEM_SERVER_NOT_ALLOWED");
  expect(reason?.level).toBe("amber");
  expect(reason?.message).toContain("exfil.evil.example is not in telemetry.allowedServers");
  expect(
    t.alerts.alerts.some((a) => a.kind === "telemetry-refused" && a.code === "TELEM_SERVER_NOT_ALLOWED"),
  ).toBe(true);
  expect(t.agent.events.recent((e) => e.type === "telemetry-refused")).toHaveLength(1);
});

test("off by default: nothing is built or sent", async () => {
  t = await startAgent(vendor, { registry, config: { hosts: { isolation: "in-process" } } });
  let calls = 0;
  svc = new TelemetryService({
    agent: t.agent,
    config: t.agent.config,
    fetchImpl: (async () => {
      calls++;
      return new Response(null);
    }) as unknown as typeof fetch,
  });
  svc.start();
  expect(svc.enabled).toBe(false);
  await expect(svc.reportNow()).rejects.toThrow("disabled");
  expect(calls).toBe(0);
});

test("reports queued while the receiver is down survive an agent restart and are delivered once", async () => {
  await vendor.release("TELEMSUP", 1, {
    "telemsup.json": JSON.stringify({
      port: 0,
      resourceRoot: "telemetry",
      server: "localhost",
      verb: "POST",
      interval: 600,
    }),
  });
  server = await serveRelease({ config, port: 0, autoTick: false });
  const port = server.port;
  await server.stop();
  server = undefined;
  const cfg = {
    hosts: { isolation: "in-process" as const },
    fleet: { token: TOKEN },
    telemetry: {
      enabled: true,
      allowedServers: [`http://localhost:${port}`],
      maxBackoffSeconds: 0.2,
      jitter: 0.1,
    },
  };
  t = await startAgent(vendor, { registry, config: cfg });
  await t.agent.update();
  let clock = Date.parse("2026-12-01T00:00:00Z");
  svc = new TelemetryService({
    agent: t.agent,
    config: t.agent.config,
    now: () => new Date(clock),
    random: () => 1,
    minBackoffMs: 5,
  });
  svc.start();
  await svc.refresh();
  // Interval ± jitter from the service start: random() = 1 gives the late edge, 600 s × 1.1.
  expect(svc.nextDueMs()).toBe(clock + 660_000);
  const ids = [(await svc.reportNow()).reportId, (await svc.reportNow()).reportId];
  clock += 1000;
  expect(svc.nextDueMs()).toBe(clock - 1000 + 660_000); // the next one counts from the last report
  await until("a failed attempt", () => (svc?.stats().queue?.failures ?? 0) > 0);
  await svc.stop();
  await t.stop();

  // A new agent process on the same state: the queue is still there; the receiver is back.
  server = await serveRelease({ config, port, autoTick: false });
  t = await startAgent(vendor, { registry, config: cfg, stateDir: t.stateDir });
  // Same clock: the next report is not due yet, so only the two queued ones travel.
  svc = new TelemetryService({
    agent: t.agent,
    config: t.agent.config,
    now: () => new Date(clock),
    minBackoffMs: 5,
  });
  svc.start();
  await svc.refresh();
  expect(svc.stats().lastReportAt).toBe(new Date(clock - 1000).toISOString());
  expect(await svc.flush(20_000)).toBe(true);
  expect((await storedReports(server, 10)).map((r) => r.report.reportId).sort()).toEqual(ids.sort());
});
