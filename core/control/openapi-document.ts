/**
 * `GET /v1/openapi.json`: the OpenAPI 3.1 document of the routes an
 * OpenApiHono declared (openapi-route.ts), generated with zod's own JSON
 * Schema conversion.
 *
 * Schemas carry their documentation in one registry (`openApiMeta`): `doc`
 * adds a description, an example or a format to a schema; `named` also gives
 * it a name, and a named schema becomes `components.schemas.<name>`,
 * referenced by `$ref` wherever it appears. Registry entries are keyed by the
 * schema instance (a WeakMap), so a lazily built schema (lazy-schema.ts) that
 * is let go and built again is documented again by its builder. A name,
 * though, maps to the latest instance given it, and the registry holds that
 * one: once the document has been generated, one instance of each named
 * schema (18 of them) stays built.
 */
import { z } from "../schema/zod.ts";
import { type AnySchema, type DocumentedRoute, isZodSchema, type MediaEntry } from "./openapi-route.ts";

export interface OpenApiMeta {
  /** Set by `named`: the component name. */
  id?: string;
  description?: string;
  example?: unknown;
  format?: string;
}

/** The control plane's documentation registry (descriptions, examples, component names). */
export const openApiMeta = z.registry<OpenApiMeta>();

/** Documents `schema` (description, example, format) and returns it. */
export function doc<S extends AnySchema>(schema: S, meta: Omit<OpenApiMeta, "id">): S {
  openApiMeta.add(schema, { ...openApiMeta.get(schema), ...meta });
  return schema;
}

/** Names `schema` as an OpenAPI component (and documents it); returns it. */
export function named<S extends AnySchema>(name: string, schema: S, meta: Omit<OpenApiMeta, "id"> = {}): S {
  openApiMeta.add(schema, { ...openApiMeta.get(schema), ...meta, id: name });
  return schema;
}

const REF = "#/components/schemas/";
type Json = Record<string, unknown>;

export interface DocumentBase {
  openapi: "3.1.0";
  info: { title: string; version: string; description?: string };
  security?: Record<string, string[]>[];
  tags?: { name: string; description?: string }[];
}

/**
 * Every zod schema a route mentions, converted in one pass so that named schemas become components
 * and the rest is inlined where it appears. Schemas at a route's positions are registered under
 * temporary ids for the pass (zod converts a registry, not a list) and taken out again after.
 */
function convert(schemas: AnySchema[]): { inline: Map<AnySchema, Json>; components: Record<string, Json> } {
  const temporary = new Map<AnySchema, { id: string; before: OpenApiMeta | undefined }>();
  for (const s of schemas) {
    const before = openApiMeta.get(s);
    if (before?.id || temporary.has(s)) continue;
    temporary.set(s, { id: `__position_${temporary.size}`, before });
  }
  for (const [s, t] of temporary) openApiMeta.add(s, { ...t.before, id: t.id });
  let out: Record<string, Json>;
  try {
    out = z.toJSONSchema(openApiMeta, {
      uri: (id) => `${REF}${id}`,
      metadata: openApiMeta,
      // What is accepted: a plain object also takes keys it does not name (no additionalProperties:
      // false, which zod states of its output), as the document said before (@hono/zod-openapi).
      io: "input",
      unrepresentable: "any",
    }).schemas as Record<string, Json>;
  } finally {
    for (const [s, t] of temporary) {
      openApiMeta.remove(s);
      if (t.before) openApiMeta.add(s, t.before);
    }
  }
  const clean = (j: Json): Json => {
    const { $schema: _s, $id: _i, ...rest } = j;
    return rest;
  };
  const inline = new Map<AnySchema, Json>();
  const components: Record<string, Json> = {};
  for (const [id, body] of Object.entries(out))
    if (!id.startsWith("__position_")) components[id] = clean(body);
  // A position's schema nested in another schema was referenced by its temporary id: inline it there.
  const resolve = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(resolve);
    if (!node || typeof node !== "object") return node;
    const ref = (node as Json).$ref;
    if (typeof ref === "string" && ref.startsWith(`${REF}__position_`))
      return resolve(clean(out[ref.slice(REF.length)]!));
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, resolve(v)]));
  };
  for (const [id, body] of Object.entries(components)) components[id] = resolve(body) as Json;
  for (const s of schemas) {
    const id = openApiMeta.get(s)?.id;
    inline.set(s, id ? { $ref: `${REF}${id}` } : (resolve(clean(out[temporary.get(s)!.id]!)) as Json));
  }
  return { inline, components };
}

/** The keys of an object schema, each with its schema and whether it may be left out. */
function fields(schema: AnySchema): { name: string; schema: AnySchema; optional: boolean }[] {
  const shape = (schema._zod.def as { shape?: Record<string, AnySchema> }).shape ?? {};
  return Object.entries(shape).map(([name, s]) => ({
    name,
    schema: s,
    optional: s._zod.optin === "optional",
  }));
}

function mediaSchemas(content: Readonly<Record<string, MediaEntry>> | undefined): AnySchema[] {
  return Object.values(content ?? {})
    .map((m) => m.schema)
    .filter(isZodSchema);
}

export interface OpenApiDocument extends DocumentBase {
  components: { schemas: Record<string, Json>; securitySchemes: Record<string, Json> };
  paths: Record<string, Record<string, Json>>;
}

/** The document for `routes`, with `base` (info, security, tags) and `securitySchemes`. */
export function openApiDocumentOf(
  routes: readonly DocumentedRoute[],
  base: DocumentBase,
  securitySchemes: Record<string, Json>,
): OpenApiDocument {
  const positions: AnySchema[] = [];
  for (const { spec } of routes) {
    const r = spec.request;
    for (const part of [r?.params, r?.query, r?.headers])
      if (part) for (const f of fields(part)) positions.push(f.schema);
    positions.push(...mediaSchemas(r?.body?.content));
    for (const res of Object.values(spec.responses)) positions.push(...mediaSchemas(res.content));
  }
  const { inline, components } = convert(positions);
  const schemaOf = (s: unknown): unknown => (isZodSchema(s) ? inline.get(s) : s);
  const contentOf = (content: Readonly<Record<string, MediaEntry>>) =>
    Object.fromEntries(Object.entries(content).map(([type, m]) => [type, { schema: schemaOf(m.schema) }]));

  const paths: Record<string, Record<string, Json>> = {};
  for (const { spec, path } of routes) {
    const r = spec.request;
    const parameters: Json[] = [];
    for (const [where, part] of [
      ["path", r?.params],
      ["query", r?.query],
      ["header", r?.headers],
    ] as const) {
      if (!part) continue;
      for (const f of fields(part)) {
        const description = openApiMeta.get(f.schema)?.description;
        parameters.push({
          name: f.name,
          in: where,
          required: where === "path" || !f.optional,
          ...(description ? { description } : {}),
          schema: schemaOf(f.schema),
        });
      }
    }
    const op: Json = {
      ...(spec.tags ? { tags: [...spec.tags] } : {}),
      ...(spec.summary ? { summary: spec.summary } : {}),
      ...(spec.description ? { description: spec.description } : {}),
      ...(spec.security ? { security: spec.security.map((s) => ({ ...s })) } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(r?.body
        ? {
            requestBody: {
              ...(r.body.description ? { description: r.body.description } : {}),
              required: r.body.required ?? false,
              content: contentOf(r.body.content),
            },
          }
        : {}),
      responses: Object.fromEntries(
        Object.entries(spec.responses).map(([status, res]) => [
          status,
          { description: res.description, ...(res.content ? { content: contentOf(res.content) } : {}) },
        ]),
      ),
    };
    paths[path] ??= {};
    paths[path][spec.method] = op;
  }
  return {
    ...base,
    components: { schemas: components, securitySchemes },
    paths,
  };
}
