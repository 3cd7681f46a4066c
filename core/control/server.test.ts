import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeAgentApi } from "../../test/fakes/agent-api.ts";
import { statePaths } from "../config.ts";
import { ConfigError, HandlerError, SignatureError, UpdateError } from "../errors.ts";
import { tokensEqual } from "./auth.ts";
import { httpStatusFor } from "./errors.ts";
import { type ControlPlane, createControlApp, isLoopbackHost, startControlPlane } from "./server.ts";

const TOKEN = "t".repeat(64);
const auth = { authorization: `Bearer ${TOKEN}` };

let api: FakeAgentApi;
let app: ReturnType<typeof createControlApp>;

beforeEach(() => {
  api = new FakeAgentApi();
  app = createControlApp(api, { token: TOKEN, bodyLimitBytes: 1024 });
});

const req = (path: string, init: RequestInit = {}) => app.request(`http://localhost${path}`, init);

async function expectError(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toContain("application/json");
  const body = (await res.json()) as { error: Record<string, unknown> };
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe("string");
  return body.error;
}

describe("auth", () => {
  test("health needs no token", async () => {
    const res = await req("/v1/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  test("missing, malformed and wrong tokens get 401 before the agent is touched", async () => {
    for (const headers of [
      {} as Record<string, string>,
      { authorization: TOKEN },
      { authorization: "Basic dXNlcjpwYXNz" },
      { authorization: `Bearer ${"t".repeat(63)}u` },
      { authorization: "Bearer short" },
    ]) {
      const res = await req("/v1/status", { headers });
      await expectError(res, 401, "CTL_UNAUTHORIZED");
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
    }
    expect(api.calls).toEqual([]);
  });

  test("constant-time comparison still distinguishes tokens", () => {
    expect(tokensEqual(TOKEN, TOKEN)).toBe(true);
    expect(tokensEqual(`${TOKEN}x`, TOKEN)).toBe(false);
    expect(tokensEqual("", TOKEN)).toBe(false);
  });

  test("refuses to run with a guessable token", () => {
    expect(() => createControlApp(api, { token: "abc" })).toThrow(/at least 32/);
  });
});

describe("routes", () => {
  test("GET /v1/status returns AgentStatus", async () => {
    const res = await req("/v1/status", { headers: auth });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(api.status())));
  });

  test("GET /v1/content lists content", async () => {
    const res = await req("/v1/content", { headers: auth });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(api.items);
  });

  test("POST /v1/update runs a cycle and returns its report", async () => {
    const res = await req("/v1/update", { method: "POST", headers: auth });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(api.report);
    expect(api.calls.map((c) => c.op)).toEqual(["update"]);
  });

  test("actions lift Bun's 10 s idle limit for their connection; reads keep it", async () => {
    // Bun only knows the Request object it handed in: the lift must name that very object.
    const lifted: [Request, number][] = [];
    const server = { timeout: (r: Request, s: number) => lifted.push([r, s]) };
    const update = new Request("http://localhost/v1/update", { method: "POST", headers: auth });
    await app.fetch(update, server);
    await app.fetch(new Request("http://localhost/v1/status", { headers: auth }), server);
    expect(lifted).toHaveLength(1);
    expect(lifted[0]![0]).toBe(update);
    expect(lifted[0]![1]).toBe(0);
  });

  test("GET /v1/update is not a route", async () => {
    await expectError(await req("/v1/update", { headers: auth }), 404, "CTL_NOT_FOUND");
    expect(api.calls).toEqual([]);
  });

  test("POST /v1/content/:type/rollback", async () => {
    const res = await req("/v1/content/Hmpa_data/rollback", { method: "POST", headers: auth });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { version: number }).version).toBe(2);
    expect(api.calls).toEqual([{ op: "rollback", args: ["Hmpa_data"] }]);
  });

  test("rollback without LKG is a 409 with the store's code", async () => {
    api.items = [{ ...api.items[0]!, lkgVersion: null }];
    await expectError(
      await req("/v1/content/Hmpa_data/rollback", { method: "POST", headers: auth }),
      409,
      "STORE_NO_LKG",
    );
  });

  test("POST /v1/handlers/:type/:method passes the JSON body as args", async () => {
    const res = await req("/v1/handlers/Hmpa_data/check", {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ paths: ["/usr/bin/ls"] }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      result: { echo: { type: "Hmpa_data", method: "check", args: { paths: ["/usr/bin/ls"] } } },
    });
  });

  test("an empty handler body means null args", async () => {
    const res = await req("/v1/handlers/Hmpa_data/info", { method: "POST", headers: auth });
    expect(res.status).toBe(200);
    expect(api.calls).toEqual([{ op: "call", args: ["Hmpa_data", "info", null] }]);
  });

  test("invalid JSON body is a 400 and never reaches the handler", async () => {
    const res = await req("/v1/handlers/Hmpa_data/check", { method: "POST", headers: auth, body: "{nope" });
    await expectError(res, 400, "CTL_BAD_REQUEST");
    expect(api.calls).toEqual([]);
  });

  test("odd path parameters are rejected", async () => {
    for (const path of ["/v1/handlers/..%2Fetc/check", "/v1/content/a.b/rollback", "/v1/handlers/T/%20x"]) {
      await expectError(await req(path, { method: "POST", headers: auth }), 400, "CTL_BAD_REQUEST");
    }
    expect(api.calls).toEqual([]);
  });

  test("unknown routes are 404 JSON with the token, 401 without (no route discovery)", async () => {
    await expectError(await req("/v1/nope", { headers: auth }), 404, "CTL_NOT_FOUND");
    await expectError(await req("/", { headers: auth }), 404, "CTL_NOT_FOUND");
    await expectError(await req("/", {}), 401, "CTL_UNAUTHORIZED");
    await expectError(await req("/v1/nope", {}), 401, "CTL_UNAUTHORIZED");
  });
});

describe("error mapping", () => {
  const cases: [unknown, number, string, string | undefined][] = [
    [
      new HandlerError("HND_UNKNOWN_TYPE", "no handler for content type X"),
      404,
      "HND_UNKNOWN_TYPE",
      undefined,
    ],
    [
      new ConfigError("CFG_INVALID", "bad config", { file: "/etc/outpost/agent.json" }),
      400,
      "CFG_INVALID",
      "/etc/outpost/agent.json",
    ],
    [
      new SignatureError("SIG_EXPIRED", "signer expired", { file: "Hmpa_data-3.opkg" }),
      422,
      "SIG_EXPIRED",
      "Hmpa_data-3.opkg",
    ],
    [new UpdateError("UPD_INDEX_FETCH", "index fetch failed"), 422, "UPD_INDEX_FETCH", undefined],
    [new Error("boom"), 500, "INTERNAL", undefined],
  ];
  for (const [err, status, code, file] of cases) {
    test(`${code} → ${status}`, async () => {
      api.failNext.set("call", err);
      const res = await req("/v1/handlers/X/check", { method: "POST", headers: auth });
      const body = await expectError(res, status, code);
      expect(body.file).toBe(file);
      expect(Object.keys(body).sort()).toEqual(file ? ["code", "file", "message"] : ["code", "message"]);
    });
  }

  test("a sync throw in status() is mapped too", async () => {
    api.failNext.set("status", new UpdateError("IDX_CORRUPT", "index cache corrupt"));
    await expectError(await req("/v1/status", { headers: auth }), 422, "IDX_CORRUPT");
  });

  test("status families", () => {
    expect(httpStatusFor("CTL_UNAUTHORIZED")).toBe(401);
    expect(httpStatusFor("PKG_DIGEST_MISMATCH")).toBe(422);
    expect(httpStatusFor("STORE_NO_LKG")).toBe(409);
    expect(httpStatusFor("STORE_IO")).toBe(500);
    expect(httpStatusFor("HND_LOAD_FAILED")).toBe(500);
    expect(httpStatusFor("HND_HMPA_BAD_ARGS")).toBe(400);
    expect(httpStatusFor("HND_NOT_LOADED")).toBe(409);
    expect(httpStatusFor("HND_UNKNOWN_METHOD")).toBe(404);
  });
});

describe("body limit", () => {
  test("a declared oversize body is 413", async () => {
    const res = await req("/v1/handlers/Hmpa_data/check", {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ pad: "x".repeat(2000) }),
    });
    await expectError(res, 413, "CTL_BODY_TOO_LARGE");
    expect(api.calls).toEqual([]);
  });

  test("a streamed oversize body is 413", async () => {
    const chunk = new TextEncoder().encode("x".repeat(600));
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(chunk);
        controller.enqueue(chunk);
        controller.close();
      },
    });
    const res = await req("/v1/handlers/Hmpa_data/check", {
      method: "POST",
      headers: { ...auth, "transfer-encoding": "chunked" },
      body,
    });
    await expectError(res, 413, "CTL_BODY_TOO_LARGE");
  });

  test("a body just under the limit passes", async () => {
    const args = { pad: "x".repeat(1000) };
    const res = await req("/v1/handlers/Hmpa_data/check", {
      method: "POST",
      headers: auth,
      body: JSON.stringify(args),
    });
    expect(res.status).toBe(200);
  });
});

describe("startControlPlane", () => {
  let stateDir: string;
  let plane: ControlPlane | undefined;

  beforeEach(() => {
    stateDir = mkdtempSync(join(tmpdir(), "outpost-ctl-"));
  });
  afterEach(async () => {
    await plane?.stop();
    plane = undefined;
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("advertises itself, serves TCP and unix socket, cleans up on stop", async () => {
    plane = await startControlPlane({ api, stateDir });
    const paths = statePaths(stateDir);
    expect(plane.url).toBe(`http://127.0.0.1:${plane.port}`);
    expect(plane.token).toMatch(/^[0-9a-f]{64}$/);

    expect(readFileSync(paths.controlToken, "utf8").trim()).toBe(plane.token);
    expect(statSync(paths.controlToken).mode & 0o777).toBe(0o600);
    const info = JSON.parse(readFileSync(paths.controlInfo, "utf8"));
    expect(info).toMatchObject({ url: plane.url, port: plane.port, pid: process.pid });
    expect(Number.isNaN(Date.parse(info.startedAt))).toBe(false);

    const headers = { authorization: `Bearer ${plane.token}` };
    const overTcp = await fetch(`${plane.url}/v1/content`, { headers });
    expect(overTcp.status).toBe(200);
    expect(await overTcp.json()).toEqual(api.items);

    expect(plane.socket).toBe(paths.controlSocket);
    expect(info.socket).toBe(paths.controlSocket);
    expect(statSync(paths.controlSocket).mode & 0o777).toBe(0o600);
    const overUnix = await fetch("http://localhost/v1/status", { headers, unix: paths.controlSocket });
    expect(overUnix.status).toBe(200);
    const unauthorised = await fetch("http://localhost/v1/status", { unix: paths.controlSocket });
    expect(unauthorised.status).toBe(401);

    await plane.stop();
    expect(existsSync(paths.controlInfo)).toBe(false);
    expect(existsSync(paths.controlToken)).toBe(false);
    expect(existsSync(paths.controlSocket)).toBe(false);
    await expect(fetch(`${plane.url}/v1/health`)).rejects.toThrow();
  });

  test("each start issues a fresh token", async () => {
    plane = await startControlPlane({ api, stateDir });
    const first = plane.token;
    await plane.stop();
    plane = await startControlPlane({ api, stateDir });
    expect(plane.token).not.toBe(first);
    const stale = await fetch(`${plane.url}/v1/status`, { headers: { authorization: `Bearer ${first}` } });
    expect(stale.status).toBe(401);
  });

  test("refuses a non-loopback host unless allowRemote", async () => {
    const err = await startControlPlane({ api, stateDir, host: "0.0.0.0" }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.code).toBe("CFG_REMOTE_CONTROL");
    expect(existsSync(statePaths(stateDir).controlToken)).toBe(false);
  });

  test("loopback detection", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "::1", "localhost"]) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ["0.0.0.0", "10.0.0.1", "::", "example.com", "127.example.com"])
      expect(isLoopbackHost(h)).toBe(false);
  });
});
