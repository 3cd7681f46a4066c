/**
 * GET /v1/openapi.json: a structurally valid OpenAPI 3.1 document that
 * lists every route the app serves (core and extensions), and schemas that
 * describe what a real agent returns.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { FakeAgentApi } from "../../test/fakes/agent-api.ts";
import { structuralProblems } from "../../test/fixtures/openapi.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "../../test/fixtures/vendor.ts";
import { z } from "../schema/zod.ts";
import type { RouteExtension } from "./extensions.ts";
import { named } from "./openapi-document.ts";
import { defineRoute } from "./openapi-route.ts";
import { AgentStatusSchema, ContentInfoSchema, UpdateCycleReportSchema } from "./schemas.ts";
import { createControlApp, openApiDocument } from "./server.ts";

const TOKEN = "o".repeat(64);
const auth = { authorization: `Bearer ${TOKEN}` };

/** An extension using both styles: a schema'd route and a plain Hono one. */
const scanExtension: RouteExtension = {
  name: "scan-test",
  mount(v1) {
    v1.openapi(
      defineRoute({
        method: "post",
        path: "/scan/{engine}",
        tags: ["scan-test"],
        request: {
          params: z.object({ engine: z.enum(["quick", "full"]) }),
          body: {
            content: {
              "application/json": {
                schema: named("ScanRequest", z.object({ path: z.string().check(z.minLength(1)) })),
              },
            },
            required: true,
          },
        },
        responses: {
          200: {
            description: "scan result",
            content: {
              "application/json": { schema: named("ScanResult", z.object({ found: z.boolean() })) },
            },
          },
        },
      }),
      (c) => c.json({ found: c.req.valid("json").path.includes("eicar") }, 200),
    );
    v1.get("/scan/:id/report", (c) => c.json({ id: c.req.param("id") }));
  },
};

const makeApp = () => createControlApp(new FakeAgentApi(), { token: TOKEN, extensions: [scanExtension] });
type Doc = ReturnType<typeof openApiDocument> & Record<string, unknown>;

describe("the document", () => {
  test("is served at /v1/openapi.json behind the token, and is structurally valid OpenAPI 3.1", async () => {
    const app = makeApp();
    expect((await app.request("http://localhost/v1/openapi.json")).status).toBe(401);
    const res = await app.request("http://localhost/v1/openapi.json", { headers: auth });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/json");
    const doc = (await res.json()) as Doc;
    expect(structuralProblems(doc)).toEqual([]);
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.components?.securitySchemes?.bearerAuth).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
    // Health is the one operation that opts out of the token.
    expect(doc.paths?.["/v1/health"]?.get?.security).toEqual([]);
    // Everything else inherits the document's bearer requirement.
    for (const [path, item] of Object.entries(doc.paths ?? {}))
      for (const op of Object.values(item as Record<string, { security?: unknown }>))
        if (path !== "/v1/health") expect(op.security).toBeUndefined();
  });

  test("every core path is present with the shapes it returns", () => {
    const doc = openApiDocument(makeApp()) as Doc;
    const ops = Object.entries(doc.paths ?? {}).flatMap(([p, item]) =>
      Object.keys(item as object).map((m) => `${m.toUpperCase()} ${p}`),
    );
    for (const op of [
      "GET /v1/health",
      "GET /v1/status",
      "GET /v1/content",
      "POST /v1/update",
      "POST /v1/content/{type}/rollback",
      "POST /v1/handlers/{type}/{method}",
      "GET /v1/events",
      "GET /metrics",
      "GET /v1/openapi.json",
    ])
      expect(ops).toContain(op);
    const schemas = doc.components?.schemas ?? {};
    for (const name of [
      "AgentStatus",
      "ContentInfo",
      "UpdateCycleReport",
      "Error",
      "HostStatus",
      "AgentEvent",
    ])
      expect(schemas).toHaveProperty(name);
    const ref = (path: string, method: string, status: string, type = "application/json") =>
      // biome-ignore lint/suspicious/noExplicitAny: walking a JSON document
      (doc.paths as any)[path][method].responses[status].content[type].schema;
    expect(ref("/v1/status", "get", "200")).toEqual({ $ref: "#/components/schemas/AgentStatus" });
    expect(ref("/v1/update", "post", "200")).toEqual({ $ref: "#/components/schemas/UpdateCycleReport" });
    expect(ref("/v1/content/{type}/rollback", "post", "409")).toEqual({ $ref: "#/components/schemas/Error" });
    expect(ref("/v1/events", "get", "200", "text/event-stream")).toEqual({
      $ref: "#/components/schemas/AgentEvent",
    });
  });

  test("each route the app registered appears in it (extensions included, plain ones too)", () => {
    const app = makeApp();
    const doc = openApiDocument(app) as Doc;
    const registered = new Set(
      app.routes
        .filter((r) => r.method !== "ALL")
        .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:([A-Za-z0-9_]+)/g, "{$1}")}`),
    );
    expect(registered.size).toBeGreaterThanOrEqual(11);
    for (const op of registered) {
      const [method, path] = op.split(" ") as [string, string];
      expect(`${op} → ${Object.keys(doc.paths?.[path] ?? {})}`).toContain(method);
    }
    // The schema'd extension route brings its schemas; the plain one is marked undocumented.
    expect(doc.components?.schemas).toHaveProperty("ScanRequest");
    const plain = doc.paths?.["/v1/scan/{id}/report"]?.get as { summary: string; tags: string[] };
    expect(plain.summary).toContain("no schema declared");
    expect(plain.tags).toEqual(["scan-test"]);
  });
});

describe("extension routes get the core's validation and error mapping", () => {
  test("params and bodies validated by their schemas; failures are CTL_BAD_REQUEST / 415 JSON", async () => {
    const app = makeApp();
    const post = (path: string, body: string, type = "application/json") =>
      app.request(`http://localhost${path}`, {
        method: "POST",
        headers: { ...auth, "content-type": type },
        body,
      });
    const ok = await post("/v1/scan/quick", JSON.stringify({ path: "/tmp/eicar.com" }));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ found: true });

    const badParam = await post("/v1/scan/deep", JSON.stringify({ path: "/x" }));
    expect(badParam.status).toBe(400);
    const e1 = ((await badParam.json()) as { error: { code: string; message: string } }).error;
    expect(e1.code).toBe("CTL_BAD_REQUEST");
    expect(e1.message).toContain("param.engine");

    const badBody = await post("/v1/scan/full", JSON.stringify({ path: "" }));
    expect(badBody.status).toBe(400);
    expect(((await badBody.json()) as { error: { message: string } }).error.message).toContain("json.path");

    const wrongType = await post("/v1/scan/full", "path=/x", "text/plain");
    expect(wrongType.status).toBe(415);
    expect(((await wrongType.json()) as { error: { code: string } }).error.code).toBe(
      "CTL_UNSUPPORTED_MEDIA_TYPE",
    );

    const noToken = await app.request("http://localhost/v1/scan/quick", { method: "POST", body: "{}" });
    expect(noToken.status).toBe(401);
  });
});

describe("schemas describe what a real agent returns", () => {
  let vendor: Vendor;
  let t: TestAgent;
  beforeAll(async () => {
    vendor = await makeVendor();
    await vendor.release("TestText", 1, { "data.txt": "hello" });
    t = await startAgent(vendor);
  });
  afterAll(async () => {
    await t.stop();
    vendor.cleanup();
  });

  test("status, content and the update report parse without losing a field", async () => {
    const report = await t.agent.update();
    expect(report.installed.length).toBe(1);
    const roundTrip = <T>(schema: { parse(v: unknown): T }, value: unknown) => {
      const json = JSON.parse(JSON.stringify(value));
      // zod drops keys it does not know: equality means the schema names every field.
      expect(schema.parse(json)).toEqual(json);
    };
    roundTrip(UpdateCycleReportSchema, report);
    roundTrip(AgentStatusSchema, t.agent.status());
    for (const c of t.agent.content()) roundTrip(ContentInfoSchema, c);
  });

  test("GET /v1/status returns the agent's status exactly", async () => {
    const app = createControlApp(t.agent, { token: TOKEN, events: t.agent.events });
    const res = await app.request("http://localhost/v1/status", { headers: auth });
    expect(res.status).toBe(200);
    const served = (await res.json()) as { agent: { uptimeSeconds: number } };
    const direct = JSON.parse(JSON.stringify(t.agent.status()));
    // Uptime is the one field that moves on its own (whole seconds).
    expect(Math.abs(served.agent.uptimeSeconds - direct.agent.uptimeSeconds)).toBeLessThanOrEqual(1);
    served.agent.uptimeSeconds = direct.agent.uptimeSeconds;
    expect(served).toEqual(direct);
  });
});
