/**
 * The control plane's defences, checked against every route the app
 * actually registers (core and extensions), so a route added later without
 * thinking about them is caught: token on everything but health, Host
 * header pinned to loopback names, body limits, one JSON error shape, and
 * the unix socket's permissions.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeAgentApi } from "../../test/fakes/agent-api.ts";
import { EventBus } from "../agent/events.ts";
import { statePaths } from "../config.ts";
import { tokenChecker } from "./auth.ts";
import type { RouteExtension } from "./extensions.ts";
import { type ControlPlane, createControlApp, startControlPlane } from "./server.ts";

const TOKEN = "h".repeat(64);

const extension: RouteExtension = {
  name: "ext",
  mount(v1) {
    v1.post("/ext/:id/echo", async (c) => c.json({ id: c.req.param("id"), body: await c.req.text() }));
  },
};

let api: FakeAgentApi;
beforeEach(() => {
  api = new FakeAgentApi();
});

const makeApp = (opts: { allowRemote?: boolean } = {}) =>
  createControlApp(api, {
    token: TOKEN,
    bodyLimitBytes: 256,
    extensions: [extension],
    events: new EventBus(),
    ...opts,
  });

/** Every concrete (method, path) the app serves, with valid values for path parameters. */
function registeredRoutes(app: ReturnType<typeof makeApp>): [string, string][] {
  const seen = new Set<string>();
  const out: [string, string][] = [];
  for (const r of app.routes) {
    if (r.method === "ALL") continue;
    const path = r.path
      .replace(/:type/g, "Hmpa_data")
      .replace(/:method/g, "check")
      .replace(/:(\w+)/g, "x1");
    const key = `${r.method} ${path}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push([r.method, path]);
  }
  return out;
}

async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  expect(res.headers.get("content-type")).toContain("application/json");
  return ((await res.json()) as { error: { code: string; message: string } }).error;
}

describe("token", () => {
  test("every registered route but GET /v1/health refuses a missing or wrong token, before the agent is touched", async () => {
    const app = makeApp();
    const routes = registeredRoutes(app);
    expect(routes.map(([m, p]) => `${m} ${p}`)).toEqual(
      expect.arrayContaining([
        "GET /metrics",
        "GET /v1/events",
        "GET /v1/openapi.json",
        "POST /v1/ext/x1/echo",
      ]),
    );
    for (const [method, path] of routes) {
      const attempts: Record<string, string>[] = [
        {},
        { authorization: `Bearer ${"h".repeat(63)}i` },
        { authorization: TOKEN },
      ];
      for (const headers of attempts) {
        const res = await app.request(`http://127.0.0.1${path}`, { method, headers });
        if (method === "GET" && path === "/v1/health") {
          expect(res.status).toBe(200);
          continue;
        }
        expect(`${method} ${path} → ${res.status}`).toBe(`${method} ${path} → 401`);
        expect((await errorOf(res)).code).toBe("CTL_UNAUTHORIZED");
        expect(res.headers.get("www-authenticate")).toBe('Bearer realm="outpost-agent"');
      }
    }
    expect(api.calls).toEqual([]);
  });

  test("the open path is exactly GET /v1/health: look-alikes need the token", async () => {
    const app = makeApp();
    for (const [method, path] of [
      ["POST", "/v1/health"],
      ["GET", "/v1/health/"],
      ["GET", "/v1//health"],
      ["GET", "/V1/health"],
      ["GET", "/v1/health/../status"],
    ] as const) {
      const res = await app.request(`http://127.0.0.1${path}`, { method });
      expect(`${method} ${path} → ${res.status}`).toBe(`${method} ${path} → 401`);
    }
    expect(api.calls).toEqual([]);
  });

  test("the checker: case-insensitive scheme, exact token, constant-time over digests", () => {
    const ok = tokenChecker(TOKEN);
    expect(ok(`Bearer ${TOKEN}`)).toBe(true);
    expect(ok(`bearer \t${TOKEN}  `)).toBe(true);
    expect(ok(`Bearer ${TOKEN}x`)).toBe(false);
    expect(ok(`Bearer ${TOKEN.slice(1)}`)).toBe(false);
    expect(ok(`Bearer ${TOKEN} extra`)).toBe(false);
    expect(ok(undefined)).toBe(false);
    expect(() => tokenChecker("short")).toThrow(/at least 32/);
  });
});

describe("Host header (DNS rebinding)", () => {
  test("non-loopback names are refused on every route, health included", async () => {
    const app = makeApp();
    for (const host of ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "10.0.0.1", ""]) {
      for (const path of ["/v1/health", "/v1/status"]) {
        const res = await app.request(`http://127.0.0.1${path}`, {
          headers: { host, authorization: `Bearer ${TOKEN}` },
        });
        expect(`${host} ${path} → ${res.status}`).toBe(`${host} ${path} → 403`);
        expect((await errorOf(res)).code).toBe("CTL_FORBIDDEN_HOST");
      }
    }
    expect(api.calls).toEqual([]);
  });

  test("loopback names are accepted, with or without a port", async () => {
    const app = makeApp();
    for (const host of [
      "127.0.0.1",
      "127.0.0.1:41234",
      "localhost",
      "LOCALHOST:8080",
      "[::1]:9",
      "127.1.2.3",
    ]) {
      const res = await app.request("http://127.0.0.1/v1/health", { headers: { host } });
      expect(`${host} → ${res.status}`).toBe(`${host} → 200`);
    }
  });

  test("allowRemote lifts the Host restriction (the token still applies)", async () => {
    const app = makeApp({ allowRemote: true });
    const headers = { host: "agent.corp.example:9000" };
    expect((await app.request("http://x/v1/health", { headers })).status).toBe(200);
    expect((await app.request("http://x/v1/status", { headers })).status).toBe(401);
    const res = await app.request("http://x/v1/status", {
      headers: { ...headers, authorization: `Bearer ${TOKEN}` },
    });
    expect(res.status).toBe(200);
  });
});

describe("bodies", () => {
  test("every POST route, extensions included, answers 413 JSON over the limit without reaching the agent", async () => {
    const app = makeApp();
    const posts = registeredRoutes(app).filter(([m]) => m === "POST");
    expect(posts.length).toBeGreaterThanOrEqual(4);
    for (const [method, path] of posts) {
      const res = await app.request(`http://127.0.0.1${path}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ pad: "x".repeat(300) }),
      });
      expect(`${path} → ${res.status}`).toBe(`${path} → 413`);
      expect((await errorOf(res)).code).toBe("CTL_BODY_TOO_LARGE");
    }
    expect(api.calls).toEqual([]);
  });
});

describe("over real sockets", () => {
  let stateDir: string;
  let plane: ControlPlane | undefined;
  beforeEach(() => {
    stateDir = mkdtempSync(join(tmpdir(), "outpost-hard-"));
  });
  afterEach(async () => {
    await plane?.stop();
    plane = undefined;
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("the unix socket is 0600 even under a permissive umask", async () => {
    const previous = process.umask(0);
    try {
      plane = await startControlPlane({ api, stateDir });
    } finally {
      process.umask(previous);
    }
    expect(process.umask()).toBe(previous);
    expect(statSync(statePaths(stateDir).controlSocket).mode & 0o777).toBe(0o600);
    expect(statSync(statePaths(stateDir).controlToken).mode & 0o777).toBe(0o600);
  });

  test("a rebinding request reaching the TCP port is refused", async () => {
    plane = await startControlPlane({ api, stateDir });
    const res = await fetch(`${plane.url}/v1/status`, {
      headers: { host: "attacker.example", authorization: `Bearer ${plane.token}` },
    });
    expect(res.status).toBe(403);
    const ok = await fetch(`${plane.url}/v1/status`, { headers: { authorization: `Bearer ${plane.token}` } });
    expect(ok.status).toBe(200);
  });

  test("a broken extension route still answers the JSON error shape, never an HTML page", async () => {
    const broken: RouteExtension = {
      name: "broken",
      mount(v1) {
        v1.get("/broken", (() => undefined) as never);
      },
    };
    plane = await startControlPlane({ api, stateDir, extensions: [broken] });
    const res = await fetch(`${plane.url}/v1/broken`, {
      headers: { authorization: `Bearer ${plane.token}` },
    });
    expect(res.status).toBe(500);
    expect((await errorOf(res)).code).toBe("INTERNAL");
  });

  test("allowRemote binds a non-loopback address and accepts the machine's names", async () => {
    plane = await startControlPlane({ api, stateDir, host: "0.0.0.0", allowRemote: true });
    const res = await fetch(`http://127.0.0.1:${plane.port}/v1/status`, {
      headers: { host: `agent.corp.example:${plane.port}`, authorization: `Bearer ${plane.token}` },
    });
    expect(res.status).toBe(200);
  });
});
