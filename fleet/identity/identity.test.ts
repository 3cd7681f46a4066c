/**
 * Identity pieces one rule at a time: the pure heartbeat and enrollment
 * checks (verify.ts), the file store across a restart, the console login
 * (C1–C3) and `agent enroll` as an operator runs it. The attacks together,
 * against a live release, are forgery.test.ts.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand } from "citty";
import type { Heartbeat } from "../../core/agent/heartbeat-protocol.ts";
import enroll from "../../core/cli/agent/enroll.ts";
import { sha256Hex } from "../../core/crypto/digest.ts";
import { redirectStdio } from "../../core/stdio.ts";
import { makeVendor, type Vendor } from "../../test/fixtures/vendor.ts";
import { parseReleaseConfig } from "../config.ts";
import { type ReleaseServer, serveRelease } from "../server.ts";
import { TenantSchema } from "./config.ts";
import { type Enrollment, FileIdentityStore, identityStorePaths } from "./store.ts";
import { checkEnrollment, checkSignedHeartbeat } from "./verify.ts";

setDefaultTimeout(20_000);

const NOW = Date.parse("2026-03-01T12:00:00.000Z");
const enrollment: Enrollment = {
  tenant: "acme",
  agentId: "agent-0001",
  group: "public-1",
  alg: "Ed25519",
  publicKey: "k".repeat(59),
  vendor: false,
  enrolledAt: new Date(NOW).toISOString(),
};
const hb = (over: Partial<Heartbeat> = {}): Heartbeat => ({
  schema: 1,
  agentId: "agent-0001",
  tenant: "acme",
  group: "eng-test",
  agentVersion: "1",
  sentAt: new Date(NOW).toISOString(),
  health: "green",
  content: [],
  rejected: 0,
  lastRejections: [],
  seq: 10,
  ...over,
});
const signer = { tenant: "acme", agentId: "agent-0001" };
const o = { lastSeq: 5, now: NOW, maxSkewMs: 300_000 };

describe("verify.ts: signed heartbeats (I3–I6)", () => {
  test("I6: the group counted is the enrollment's, not the claim", () => {
    expect(checkSignedHeartbeat(hb(), signer, enrollment, o)).toEqual({
      ok: true,
      value: expect.objectContaining({ group: "public-1" }),
    });
  });
  test("I3: a body naming another agent than the signer", () => {
    expect(checkSignedHeartbeat(hb({ agentId: "agent-0002" }), signer, enrollment, o)).toMatchObject({
      rule: "I3",
      code: "FLEET_WRONG_AGENT",
    });
  });
  test("I4: a missing, equal or older sequence number", () => {
    for (const seq of [undefined, 5, 4]) {
      expect(checkSignedHeartbeat(hb({ seq }), signer, enrollment, o)).toMatchObject({
        rule: "I4",
        code: "FLEET_REPLAY",
      });
    }
  });
  test("I5: sentAt outside the window, either way", () => {
    for (const d of [-301_000, 301_000]) {
      const sentAt = new Date(NOW + d).toISOString();
      expect(checkSignedHeartbeat(hb({ sentAt }), signer, enrollment, o)).toMatchObject({
        rule: "I5",
        code: "FLEET_STALE",
      });
    }
  });
});

describe("verify.ts: enrollment (E2–E4)", () => {
  const tenant = TenantSchema.parse({ tokenSha256: "0".repeat(64), enroll: { maxAgents: 3, perHour: 2 } });
  const req = { tenant: "acme", agentId: "agent-0001", publicKey: enrollment.publicKey };
  test("new, again with the same key, another key (E4), over the count (E2), over the rate (E3)", () => {
    expect(checkEnrollment(req, tenant, { existing: undefined, total: 0, recentHour: 0 })).toEqual({
      ok: true,
      value: "new",
    });
    expect(checkEnrollment(req, tenant, { existing: enrollment, total: 3, recentHour: 2 })).toEqual({
      ok: true,
      value: "again",
    });
    expect(
      checkEnrollment({ ...req, publicKey: "x".repeat(59) }, tenant, {
        existing: enrollment,
        total: 1,
        recentHour: 0,
      }),
    ).toMatchObject({ rule: "E4" });
    expect(checkEnrollment(req, tenant, { existing: undefined, total: 3, recentHour: 0 })).toMatchObject({
      rule: "E2",
      status: 429,
    });
    expect(checkEnrollment(req, tenant, { existing: undefined, total: 2, recentHour: 2 })).toMatchObject({
      rule: "E3",
      status: 429,
    });
  });
});

describe("the file store", () => {
  test("enrollments and flushed sequence numbers survive a restart; a torn last audit line is skipped, damage elsewhere is not", async () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-idstore-"));
    try {
      const a = new FileIdentityStore(dir);
      await a.addEnrollment(enrollment);
      expect(await a.advanceSequence("acme", "agent-0001", 7)).toBe(true);
      expect(await a.advanceSequence("acme", "agent-0001", 7)).toBe(false);
      await a.flush();
      await a.appendAudit({
        at: new Date(NOW).toISOString(),
        actor: "alice",
        action: "abort",
        release: "T-2",
        reason: "why",
      });
      const b = new FileIdentityStore(dir);
      expect(await b.enrollment("acme", "agent-0001")).toEqual(enrollment);
      expect(await b.advanceSequence("acme", "agent-0001", 7)).toBe(false);
      expect(await b.enrollmentCounts("acme", NOW - 1)).toEqual({ total: 1, recent: 1 });
      const audit = identityStorePaths(dir).audit;
      appendFileSync(audit, '{"at":"2026-03-01T12:');
      expect((await b.audit()).map((r) => r.actor)).toEqual(["alice"]);
      writeFileSync(audit, `garbage\n${readFileSync(audit, "utf8")}`);
      await expect(b.audit()).rejects.toMatchObject({ code: "REL_AUDIT_CORRUPT" });
      expect(statSync(identityStorePaths(dir).enrollments).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("console login and agent enroll on a live server", () => {
  const OPERATOR = "operator-token-0123456789abcdef";
  const TENANT = "acme-tenant-token-0123456789abcdef";
  let vendor: Vendor;
  let root: string;
  let server: ReleaseServer;
  const start = (consoleAuth: Record<string, unknown>) =>
    serveRelease({
      config: parseReleaseConfig({
        repo: vendor.repo,
        keys: vendor.keysDir,
        stateDir: join(root, "state"),
        groups: [{ name: "public-1", promote: "manual", soakMinutes: 60 }],
        fleet: { tenants: { acme: { tokenSha256: sha256Hex(new TextEncoder().encode(TENANT)) } } },
        console: {
          operators: { alice: { tokenSha256: sha256Hex(new TextEncoder().encode(OPERATOR)) } },
          ...consoleAuth,
        },
      }),
      port: 0,
      autoTick: false,
    });

  beforeAll(async () => {
    vendor = await makeVendor();
    root = mkdtempSync(join(tmpdir(), "outpost-identity-"));
    server = await start({ proxyHeader: "x-forwarded-user" });
  });
  afterAll(async () => {
    await server?.stop();
    vendor?.cleanup();
    rmSync(root, { recursive: true, force: true });
  });

  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(new URL(path, server.url), { headers, redirect: "manual" });

  test("C3: nobody gets the console or its JSON without a login; the page sends a browser to the form", async () => {
    const page = await get("/console");
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe("/console/login");
    expect((await get("/console/status.json")).status).toBe(401);
    expect(
      (await get("/console?fragment=1", { authorization: "Bearer not-an-operator-token-xx" })).status,
    ).toBe(401);
    expect((await get("/console/login")).status).toBe(200);
  });

  test("C3 on every route: each GET the fleet app serves needs the login, console sections included (walks the route table)", async () => {
    const gets = [
      ...new Set(
        server.routes.filter((r) => r.method === "GET" && r.path !== "/console/login").map((r) => r.path),
      ),
    ];
    // The sections mounted today; one added later is walked by itself, and a read endpoint outside /console fails here.
    expect(gets).toEqual(
      expect.arrayContaining([
        "/console",
        "/console/status.json",
        "/console/exclusions",
        "/console/exclusions.json",
        "/console/telemetry",
        "/console/telemetry.json",
      ]),
    );
    for (const path of gets) {
      expect(path === "/console" || path.startsWith("/console/")).toBe(true);
      const url = path.replaceAll(/:[A-Za-z]+/g, "x");
      const anonymous = await get(url);
      const refused = anonymous.status === 401 || anonymous.headers.get("location") === "/console/login";
      expect({ path, refused }).toEqual({ path, refused: true });
      const signedIn = await get(url, { authorization: `Bearer ${OPERATOR}` });
      expect({ path, status: signedIn.status }).toEqual({ path, status: 200 });
      await signedIn.arrayBuffer();
    }
    // The upload receivers the server routes around the fleet app answer no GET (nothing to read there).
    for (const path of ["/telemetry/v1/agent-1", "/fleet/exclusions", "/fleet/heartbeat", "/fleet/enroll"])
      expect({ path, status: (await get(path)).status }).toEqual({ path, status: 404 });
  });

  test("C1: an operator token as bearer, or as the cookie the form sets", async () => {
    expect((await get("/console/status.json", { authorization: `Bearer ${OPERATOR}` })).status).toBe(200);
    const bad = await fetch(new URL("/console/login", server.url), {
      method: "POST",
      body: new URLSearchParams({ token: "wrong-token-0123456789" }),
      redirect: "manual",
    });
    expect(bad.headers.get("location")).toBe("/console/login?failed=1");
    const ok = await fetch(new URL("/console/login", server.url), {
      method: "POST",
      body: new URLSearchParams({ token: OPERATOR }),
      redirect: "manual",
    });
    const cookie = ok.headers.get("set-cookie") ?? "";
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Strict");
    const page = await get("/console", { cookie: cookie.split(";")[0]! });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<span id="operator">alice</span>');
  });

  test("C2: a reverse proxy's identity header counts from a trusted peer only", async () => {
    const page = await get("/console?fragment=1", { "x-forwarded-user": "bob@example.com" });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("proxy:bob@example.com");
    await server.stop();
    server = await start({ proxyHeader: "x-forwarded-user", trustedProxies: ["192.0.2.1"] });
    expect((await get("/console?fragment=1", { "x-forwarded-user": "bob@example.com" })).status).toBe(401);
  });

  test("agent enroll: key 0600 in STATE, the fleet's group recorded, enrolling again keeps the key; the console lists it", async () => {
    const state = join(root, "agent-state");
    const tokenFile = join(root, "tenant.token");
    writeFileSync(tokenFile, `${TENANT}\n`, { mode: 0o600 });
    const args = [
      "--state",
      state,
      "--fleet",
      server.url.href,
      "--tenant-token",
      tokenFile,
      "--tenant",
      "acme",
      "--json",
    ];
    const restore = redirectStdio(() => {});
    try {
      const first = (await runCommand(enroll, { rawArgs: args })).result as {
        group: string;
        publicKey: string;
      };
      expect(first.group).toBe("public-1");
      expect(statSync(join(state, "fleet-key.der")).mode & 0o777).toBe(0o600);
      const again = (await runCommand(enroll, { rawArgs: args })).result as { publicKey: string };
      expect(again.publicKey).toBe(first.publicKey);
      writeFileSync(tokenFile, "someone-elses-token-0123456789\n");
      await expect(runCommand(enroll, { rawArgs: args })).rejects.toMatchObject({
        code: "UPD_ENROLL_REFUSED",
      });
    } finally {
      restore();
    }
    const page = await get("/console?fragment=1", { authorization: `Bearer ${OPERATOR}` });
    expect(await page.text()).toMatch(/<tr data-tenant="acme">.*<td class="enrolled">1 \/ 1000<\/td>/);
  });
});
