/** Reading request bodies at the fleet edge (heartbeats, enrollments) without trusting Content-Length. */
import type { Context } from "hono";
import type { z } from "../../core/schema/zod.ts";

/** The body, or null when it is larger than `max` (whatever Content-Length claims). */
export async function readCapped(req: Request, max: number): Promise<Uint8Array<ArrayBuffer> | null> {
  const declared = Number(req.headers.get("content-length") ?? Number.NaN);
  if (Number.isFinite(declared) && declared > max) return null;
  const reader = req.body?.getReader();
  if (!reader) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

export type JsonBody<T> =
  | { ok: true; body: Uint8Array<ArrayBuffer>; data: T }
  | { ok: false; response: Response };

/**
 * A JSON request body checked at the edge, in order: content type (415), size cap (413), UTF-8 JSON
 * (400), the schema (400, first five issues) — each a FLEET_* answer. `body` is the raw bytes (what a
 * signature covers).
 */
export async function readJsonBody<T>(
  c: Context,
  schema: z.ZodMiniType<T>,
  max: number,
  what: string,
): Promise<JsonBody<T>> {
  const fail = (error: string, code: string, status: 400 | 413 | 415): JsonBody<T> => ({
    ok: false,
    response: c.json({ error, code }, status),
  });
  if (!(c.req.header("content-type") ?? "").toLowerCase().startsWith("application/json"))
    return fail("content-type must be application/json", "FLEET_MEDIA_TYPE", 415);
  const body = await readCapped(c.req.raw, max);
  if (body === null) return fail(`${what} larger than ${max} bytes`, "FLEET_TOO_LARGE", 413);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    return fail("not UTF-8 JSON", "FLEET_INVALID", 400);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    return fail(`invalid ${what}: ${issues.join("; ")}`, "FLEET_INVALID", 400);
  }
  return { ok: true, body, data: parsed.data };
}
