/**
 * The route layer on its own (openapi-route.ts, openapi-document.ts): what a
 * declared route validates, how it refuses, and what the document says of it.
 * The control plane's own routes are covered end to end by openapi.test.ts.
 */
import { describe, expect, test } from "bun:test";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "../schema/zod.ts";
import { codeForHttpStatus, errorBody, httpStatusFor } from "./errors.ts";
import { doc, named, openApiDocumentOf, openApiMeta } from "./openapi-document.ts";
import { defineRoute, honoPath, OpenApiHono, openApiPath } from "./openapi-route.ts";

const Item = named("TestItem", z.object({ id: doc(z.string(), { example: "a1", description: "The id" }) }));
const limit = doc(z.optional(z.coerce.number().check(z.int(), z.gte(1))), {
  description: "At most this many",
});

const putRoute = defineRoute({
  method: "put",
  path: "/items/{id}",
  tags: ["items"],
  request: {
    params: z.object({ id: z.string().check(z.regex(/^[a-z0-9]+$/, "invalid id")) }),
    query: z.object({ limit }),
    body: {
      content: { "application/json": { schema: z.object({ name: z.string().check(z.minLength(1)) }) } },
      required: true,
    },
  },
  responses: { 200: { description: "The item", content: { "application/json": { schema: Item } } } },
});

const postRoute = defineRoute({
  method: "post",
  path: "/notes",
  request: {
    body: { content: { "application/json": { schema: z.object({ text: z.optional(z.string()) }) } } },
  },
  responses: { 200: { description: "ok" } },
});

function app(): OpenApiHono {
  const a = new OpenApiHono();
  a.onError((e, c) => {
    const status = "status" in e && typeof e.status === "number" ? e.status : undefined;
    const body = status ? { error: { code: codeForHttpStatus(status), message: e.message } } : errorBody(e);
    return c.json(body, (status ?? httpStatusFor(body.error.code)) as ContentfulStatusCode);
  });
  const v1 = new OpenApiHono();
  v1.openapi(putRoute, (c) => {
    const { id } = c.req.valid("param");
    const { limit: n } = c.req.valid("query");
    const { name } = c.req.valid("json");
    return c.json({ id, name, limit: n ?? null }, 200);
  });
  v1.openapi(postRoute, (c) => c.json({ got: c.req.valid("json") }, 200));
  a.include("/v1", v1);
  return a;
}

const send = (a: OpenApiHono, method: string, path: string, body?: string, type = "application/json") =>
  a.request(`http://localhost${path}`, {
    method,
    ...(body !== undefined ? { body, headers: { "content-type": type } } : {}),
  });

describe("a declared route", () => {
  test("gets its parts parsed: path, query (coerced), JSON body", async () => {
    const res = await send(app(), "PUT", "/v1/items/ab1?limit=3", JSON.stringify({ name: "x" }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: "ab1", name: "x", limit: 3 });
  });

  test("refuses each bad part with CTL_BAD_REQUEST naming target.path and the reason", async () => {
    const a = app();
    const cases: [string, string, string][] = [
      ["/v1/items/AB?limit=3", JSON.stringify({ name: "x" }), "param.id: invalid id"],
      ["/v1/items/ab?limit=0", JSON.stringify({ name: "x" }), "query.limit: Too small"],
      ["/v1/items/ab", JSON.stringify({ name: "" }), "json.name: Too small"],
      ["/v1/items/ab", "{not json", "Malformed JSON"],
    ];
    for (const [path, body, message] of cases) {
      const res = await send(a, "PUT", path, body);
      expect(res.status).toBe(400);
      const e = ((await res.json()) as { error: { code: string; message: string } }).error;
      expect(e.code).toBe("CTL_BAD_REQUEST");
      expect(e.message).toContain(message);
    }
  });

  test("a body of another media type is 415; an optional body may be absent", async () => {
    const a = app();
    const wrong = await send(a, "PUT", "/v1/items/ab", "name=x", "text/plain");
    expect(wrong.status).toBe(415);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe(
      "CTL_UNSUPPORTED_MEDIA_TYPE",
    );
    const none = await send(a, "POST", "/v1/notes");
    expect(none.status).toBe(200);
    expect(await none.json()).toEqual({ got: {} });
    const some = await send(a, "POST", "/v1/notes", JSON.stringify({ text: "hi" }));
    expect(await some.json()).toEqual({ got: { text: "hi" } });
  });

  test("paths convert both ways", () => {
    expect(honoPath("/a/{b}/c/{d}")).toBe("/a/:b/c/:d");
    expect(openApiPath("/a/:b/c/:d{[0-9]+}")).toBe("/a/{b}/c/{d}");
  });
});

describe("the document", () => {
  const document = () =>
    openApiDocumentOf(app().documented, { openapi: "3.1.0", info: { title: "t", version: "1" } }, {});

  test("lists each route under its full path with parameters, body and responses", () => {
    const d = document();
    const put = d.paths["/v1/items/{id}"]?.put as Record<string, unknown>;
    expect(put.tags).toEqual(["items"]);
    expect(put.parameters).toEqual([
      { name: "id", in: "path", required: true, schema: { type: "string", pattern: "^[a-z0-9]+$" } },
      {
        name: "limit",
        in: "query",
        required: false,
        description: "At most this many",
        schema: expect.objectContaining({ type: "integer", minimum: 1, description: "At most this many" }),
      },
    ]);
    expect(put.requestBody).toMatchObject({
      required: true,
      content: { "application/json": { schema: { type: "object" } } },
    });
    expect(put.responses).toEqual({
      200: {
        description: "The item",
        content: { "application/json": { schema: { $ref: "#/components/schemas/TestItem" } } },
      },
    });
    expect(d.paths["/v1/notes"]?.post).toMatchObject({ requestBody: { required: false } });
  });

  test("a named schema is a component, with the metadata of its fields", () => {
    expect(document().components.schemas.TestItem).toEqual({
      type: "object",
      properties: { id: { type: "string", example: "a1", description: "The id" } },
      required: ["id"],
    });
  });

  test("a schema at a route's position that another schema also nests is inlined, not left dangling", () => {
    const shared = z.string();
    const r = defineRoute({
      method: "get",
      path: "/x/{v}",
      request: { params: z.object({ v: shared }) },
      responses: {
        200: {
          description: "x",
          content: { "application/json": { schema: named("TestNests", z.object({ v: shared })) } },
        },
      },
    });
    const d = openApiDocumentOf(
      [{ spec: r, path: "/x/{v}" }],
      { openapi: "3.1.0", info: { title: "t", version: "1" } },
      {},
    );
    expect(JSON.stringify(d)).not.toContain("__position_");
    expect(d.components.schemas.TestNests).toEqual({
      type: "object",
      properties: { v: { type: "string" } },
      required: ["v"],
    });
  });

  test("the metadata the pass borrowed is given back", () => {
    const s = doc(z.string(), { description: "kept" });
    const r = defineRoute({
      method: "get",
      path: "/y",
      responses: { 200: { description: "y", content: { "application/json": { schema: s } } } },
    });
    openApiDocumentOf(
      [{ spec: r, path: "/y" }],
      { openapi: "3.1.0", info: { title: "t", version: "1" } },
      {},
    );
    expect(openApiMeta.get(s)).toEqual({ description: "kept" });
  });
});
