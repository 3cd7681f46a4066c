/**
 * The control plane's routes as data, validated with zod/mini and listed in
 * `GET /v1/openapi.json` (openapi-document.ts): a small stand-in for
 * @hono/zod-openapi, which the supervisor no longer loads.
 *
 * Why: @hono/zod-openapi brings zod classic and zod-to-openapi with it, and
 * classic carries its API as closures on every schema instance. A compiled
 * probe serving one route: 5.1–5.4 MiB anonymous with @hono/zod-openapi,
 * 2.5–2.7 with Hono and zod/mini (issue 21, Footprint). Every other
 * agent-side module already used mini (core/schema/zod.ts).
 *
 * A route is declared once (`defineRoute`): method, OpenAPI-style path
 * (`/content/{type}/rollback`), what the request carries (path parameters,
 * query, headers, a body per media type) and what each status answers.
 * `OpenApiHono.openapi(route, handler)` registers it on Hono with a validator
 * per declared part, so `c.req.valid("param")` is typed and parsed, and
 * records it for the document. The behaviour is @hono/zod-openapi's, which
 * the routes were written against:
 *  - a part that fails its schema is CTL_BAD_REQUEST, naming `target.path`
 *    of every problem (`param.type: invalid content type`);
 *  - a body declared with a zod schema refuses another media type with 415
 *    (CTL_UNSUPPORTED_MEDIA_TYPE); an optional body may be absent;
 *  - a body declared with a plain JSON Schema (`{}`) is documented, not
 *    validated: the handler reads it itself.
 */
import type { Context, Env, MiddlewareHandler } from "hono";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { validator } from "hono/validator";
import { z } from "../schema/zod.ts";
import { ControlError } from "./errors.ts";

/** A zod schema (mini or any schema built on zod's core). */
export type AnySchema = z.core.$ZodType;

/** What a media type's entry may hold: a zod schema, or a plain JSON Schema object documented as is. */
export interface MediaEntry {
  schema: unknown;
}

export interface RouteSpec {
  method: "get" | "post" | "put" | "patch" | "delete";
  /** OpenAPI style: `/reputation/{sha256}`. */
  path: string;
  tags?: readonly string[];
  summary?: string;
  description?: string;
  /** `[]`: the one route that needs no token. Absent: the document's bearer requirement. */
  security?: readonly Record<string, readonly string[]>[];
  request?: {
    params?: AnySchema;
    query?: AnySchema;
    headers?: AnySchema;
    body?: { content: Readonly<Record<string, MediaEntry>>; required?: boolean; description?: string };
  };
  responses: Readonly<
    Record<string | number, { description: string; content?: Readonly<Record<string, MediaEntry>> }>
  >;
}

/** Keeps a route's literal type, so the handler's `c.req.valid(...)` knows each part's shape. */
export function defineRoute<const R extends RouteSpec>(route: R): R {
  return route;
}

type Parsed<S> = S extends AnySchema ? z.output<S> : never;
type RequestOf<R> = R extends { request: infer Q } ? Q : never;
type JsonBodyOf<R> =
  RequestOf<R> extends { body: { content: { "application/json": { schema: infer B } } } }
    ? B extends AnySchema
      ? z.output<B>
      : never
    : never;

/** The validated parts of a request to route R, as Hono's Context sees them. */
export interface InputOf<R> {
  out: {
    param: Parsed<RequestOf<R> extends { params: infer P } ? P : never>;
    query: Parsed<RequestOf<R> extends { query: infer P } ? P : never>;
    header: Parsed<RequestOf<R> extends { headers: infer P } ? P : never>;
    json: JsonBodyOf<R>;
  };
}

export type RouteHandler<R> = (c: Context<Env, string, InputOf<R>>) => Response | Promise<Response>;

/** A route as the document lists it: its spec, and its path under the app it is served from. */
export interface DocumentedRoute {
  spec: RouteSpec;
  path: string;
}

export function isZodSchema(s: unknown): s is AnySchema {
  return typeof s === "object" && s !== null && "_zod" in s;
}

/** A failed part of a request: every problem as `target.path: message`, one error code. */
function badRequest(target: string, error: z.core.$ZodError): ControlError {
  const problems = error.issues.map((i) => `${[target, ...i.path.map(String)].join(".")}: ${i.message}`);
  return new ControlError("CTL_BAD_REQUEST", `invalid request: ${problems.join("; ")}`);
}

function check(target: "param" | "query" | "header" | "json", schema: AnySchema): MiddlewareHandler {
  return validator(target, (value) => {
    const r = z.safeParse(schema, value);
    if (!r.success) throw badRequest(target, r.error);
    return r.data as never;
  });
}

const JSON_TYPE = /^application\/([a-z-.]+\+)?json/i;
const JSON_REQUEST = /^application\/([a-z-.]+\+)?json(;\s*[a-zA-Z0-9-]+=([^;]+))*$/i;

function matchesMediaType(contentType: string, mediaType: string): boolean {
  if (mediaType === "*/*") return true;
  if (JSON_TYPE.test(mediaType)) return JSON_REQUEST.test(contentType);
  const essence = contentType.split(";")[0]!.trim().toLowerCase();
  if (mediaType.endsWith("/*")) return essence.startsWith(mediaType.slice(0, -1).toLowerCase());
  return essence === mediaType.toLowerCase();
}

async function hasBody(c: Context): Promise<boolean> {
  const raw = c.req.raw;
  if (raw.body === null) return false;
  return (await c.req.arrayBuffer()).byteLength > 0;
}

/** The middleware that checks what route `spec` declares of a request, in @hono/zod-openapi's order. */
function validatorsFor(spec: RouteSpec): MiddlewareHandler[] {
  const out: MiddlewareHandler[] = [];
  const req = spec.request;
  if (req?.query) out.push(check("query", req.query));
  if (req?.params) out.push(check("param", req.params));
  if (req?.headers) out.push(check("header", req.headers));
  const content = req?.body?.content;
  if (!content) return out;
  const types = Object.keys(content);
  const json = content["application/json"]?.schema;
  if (!types.some((t) => isZodSchema(content[t]?.schema))) return out;
  out.push(async (c, next) => {
    const type = c.req.header("content-type");
    if (type ? !types.some((t) => matchesMediaType(type, t)) : await hasBody(c))
      throw new HTTPException(415, { message: "Unsupported Media Type" });
    await next();
  });
  if (!isZodSchema(json)) return out;
  const body = check("json", json);
  if (req?.body?.required) out.push(body);
  else
    out.push(async (c, next) => {
      const type = c.req.header("content-type");
      if (type && JSON_TYPE.test(type)) return body(c, next);
      c.req.addValidatedData("json", {});
      await next();
    });
  return out;
}

/** `/a/{b}` → `/a/:b` (Hono's form). */
export function honoPath(openApiPath: string): string {
  return openApiPath.replace(/\/\{(.+?)\}/g, "/:$1");
}

/** `/a/:b` (or `/a/:b{re}`) → `/a/{b}` (OpenAPI's form). */
export function openApiPath(honoPathText: string): string {
  return honoPathText.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, "{$1}");
}

/**
 * Hono plus the routes declared with `openapi()`: they are validated by their schemas and listed,
 * with the prefix they were included under (`include`), in the document.
 */
export class OpenApiHono extends Hono {
  readonly documented: DocumentedRoute[] = [];

  openapi<const R extends RouteSpec>(route: R, handler: RouteHandler<R>): this {
    const chain = [...validatorsFor(route), handler as unknown as MiddlewareHandler];
    this.on(route.method.toUpperCase(), honoPath(route.path), ...(chain as [MiddlewareHandler]));
    this.documented.push({ spec: route, path: route.path });
    return this;
  }

  /** `route(prefix, sub)` that also keeps `sub`'s declared routes, under `prefix`, for the document. */
  include(prefix: string, sub: OpenApiHono): this {
    this.route(prefix, sub);
    const base = prefix.replace(/\/$/, "");
    for (const d of sub.documented)
      this.documented.push({ spec: d.spec, path: d.path === "/" && base ? base : `${base}${d.path}` });
    return this;
  }
}
