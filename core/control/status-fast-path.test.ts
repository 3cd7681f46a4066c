/**
 * GET /v1/status over real sockets, where Bun routes it to the fast path:
 * same bytes as the Hono route, same admission decisions, counted once in
 * the same metric series, and everything it does not answer itself falls
 * through to the Hono app.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeAgentApi } from "../../test/fakes/agent-api.ts";
import { EventBus } from "../agent/events.ts";
import { parsePrometheusText } from "../cli/agent/metrics.ts";
import { type ControlPlane, createControlApp, startControlPlane } from "./server.ts";

let stateDir: string;
let api: FakeAgentApi;
let bus: EventBus;
let plane: ControlPlane | undefined;

beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), "outpost-fast-"));
  api = new FakeAgentApi();
  bus = new EventBus();
});
afterEach(async () => {
  await plane?.stop();
  plane = undefined;
  rmSync(stateDir, { recursive: true, force: true });
});

const statusCalls = () => api.calls.filter((c) => c.op === "status").length;

async function statusCount(status: string): Promise<number> {
  const res = await fetch(`${plane!.url}/metrics`, { headers: { authorization: `Bearer ${plane!.token}` } });
  const family = parsePrometheusText(await res.text()).find((f) => f.name === "outpost_http_requests_total");
  return (
    family?.samples.find(
      (s) => s.labels.route === "/v1/status" && s.labels.method === "GET" && s.labels.status === status,
    )?.value ?? 0
  );
}

describe("GET /v1/status fast path", () => {
  test("serves the same bytes as the Hono route, over TCP and the unix socket, from one status build", async () => {
    plane = await startControlPlane({ api, stateDir, events: bus });
    const headers = { authorization: `Bearer ${plane.token}` };
    const viaTcp = await fetch(`${plane.url}/v1/status`, { headers });
    const viaUnix = await fetch("http://localhost/v1/status", { headers, unix: plane.socket });
    const hono = await createControlApp(new FakeAgentApi(), { token: plane.token }).request(
      "http://localhost/v1/status",
      { headers },
    );
    const expected = await hono.text();
    for (const res of [viaTcp, viaUnix]) {
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/json");
      expect(await res.text()).toBe(expected);
    }
    expect(statusCalls()).toBe(1);
  });

  test("the same admission: no token 401 (with WWW-Authenticate), foreign Host 403, each counted once", async () => {
    plane = await startControlPlane({ api, stateDir, events: bus });
    const [ok0, u0, f0] = [await statusCount("200"), await statusCount("401"), await statusCount("403")];
    const noToken = await fetch(`${plane.url}/v1/status`);
    expect(noToken.status).toBe(401);
    expect(noToken.headers.get("www-authenticate")).toBe('Bearer realm="outpost-agent"');
    expect(((await noToken.json()) as { error: { code: string } }).error.code).toBe("CTL_UNAUTHORIZED");
    const foreign = await fetch(`${plane.url}/v1/status`, {
      headers: { host: "rebind.example", authorization: `Bearer ${plane.token}` },
    });
    expect(foreign.status).toBe(403);
    expect(((await foreign.json()) as { error: { code: string } }).error.code).toBe("CTL_FORBIDDEN_HOST");
    const ok = await fetch(`${plane.url}/v1/status`, { headers: { authorization: `Bearer ${plane.token}` } });
    expect(ok.status).toBe(200);
    await ok.text();
    expect(await statusCount("401")).toBe(u0 + 1);
    expect(await statusCount("403")).toBe(f0 + 1);
    expect(await statusCount("200")).toBe(ok0 + 1);
    expect(statusCalls()).toBe(1);
  });

  test("an event invalidates what it serves; without an event source every request rebuilds", async () => {
    plane = await startControlPlane({ api, stateDir, events: bus });
    const headers = { authorization: `Bearer ${plane.token}` };
    const get = async () =>
      (await (await fetch(`${plane!.url}/v1/status`, { headers })).json()) as {
        content: { version: number }[];
      };
    expect((await get()).content[0]!.version).toBe(3);
    api.items = [{ ...api.items[0]!, version: 4 }];
    expect((await get()).content[0]!.version).toBe(3);
    bus.emit("content-installed", { contentType: "Hmpa_data", version: 4 });
    expect((await get()).content[0]!.version).toBe(4);
    await plane.stop();

    plane = await startControlPlane({ api, stateDir });
    const before = statusCalls();
    const h2 = { authorization: `Bearer ${plane.token}` };
    for (let i = 0; i < 3; i++)
      expect((await fetch(`${plane.url}/v1/status`, { headers: h2 })).status).toBe(200);
    expect(statusCalls() - before).toBe(3);
  });

  test("other methods and look-alike paths are the Hono app's", async () => {
    plane = await startControlPlane({ api, stateDir, events: bus });
    const headers = { authorization: `Bearer ${plane.token}` };
    expect((await fetch(`${plane.url}/v1/status`, { method: "POST", headers })).status).toBe(404);
    expect((await fetch(`${plane.url}/v1/status/`, { headers })).status).toBe(404);
    const head = await fetch(`${plane.url}/v1/status`, { method: "HEAD", headers });
    expect(head.status).toBe(200);
  });
});
