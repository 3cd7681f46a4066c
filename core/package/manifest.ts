/**
 * manifest.json: the signed description of a package's payload. It is parsed
 * strictly — unknown fields, unsorted or duplicate paths and non-canonical
 * values are refused — so that one payload has exactly one valid manifest.
 */

import { PackageError } from "../errors.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";
import { decodeStrictJson } from "../strict-json.ts";
import { compareUtf8, MAX_PATH_BYTES, pathProblem, utf8Length } from "./paths.ts";

/** Refused before parsing: a manifest is a few KiB; anything this large is an attack or a mistake. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;
export const PAYLOAD_DIR = "payload/";
export const CONTENT_TYPE_PATTERN = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

const PayloadPathSchema = lazySchema(() =>
  z.string().check(
    z.superRefine((path, ctx) => {
      const problem = pathProblem(path);
      if (problem) ctx.addIssue({ code: "custom", message: `${problem.reason} (${problem.code})` });
      else if (utf8Length(PAYLOAD_DIR + path) > MAX_PATH_BYTES) {
        ctx.addIssue({ code: "custom", message: `payload/ + path exceeds ${MAX_PATH_BYTES} bytes` });
      }
    }),
  ),
);

export const ManifestFileSchema = lazySchema(() =>
  z.strictObject({
    path: PayloadPathSchema,
    size: z.int().check(z.nonnegative(), z.lte(Number.MAX_SAFE_INTEGER)),
    sha384: z.string().check(z.regex(/^[0-9a-f]{96}$/, "must be 96 lowercase hex digits")),
  }),
);

export const ManifestSchema = lazySchema(() =>
  z
    .strictObject({
      schema: z.literal(1),
      type: z.string().check(z.regex(CONTENT_TYPE_PATTERN, "must match /^[A-Za-z][A-Za-z0-9_]{0,63}$/")),
      version: z.int().check(z.positive(), z.lte(Number.MAX_SAFE_INTEGER)),
      created: z.iso.datetime({ message: "must be an ISO 8601 UTC time, e.g. 2025-01-31T12:00:00Z" }),
      files: z.array(ManifestFileSchema).check(z.maxLength(100_000)),
    })
    .check(
      z.superRefine((m, ctx) => {
        // Sorted by UTF-8 bytes and unique (case-insensitively, as the tar reader compares paths).
        for (let i = 1; i < m.files.length; i++) {
          const prev = m.files[i - 1]!.path;
          const cur = m.files[i]!.path;
          if (compareUtf8(prev, cur) >= 0) {
            ctx.addIssue({
              code: "custom",
              path: ["files", i, "path"],
              message: "files must be sorted by path (byte order) without duplicates",
            });
          } else if (prev.toLowerCase() === cur.toLowerCase()) {
            ctx.addIssue({
              code: "custom",
              path: ["files", i, "path"],
              message: "paths differing only in case are not allowed",
            });
          }
        }
      }),
    ),
);

export type Manifest = z.infer<typeof ManifestSchema>;
export type ManifestFile = z.infer<typeof ManifestFileSchema>;

/**
 * The canonical serialisation packDirectory signs. Any byte-exact
 * serialisation is accepted on the verifying side: the signature covers the
 * bytes, not a re-encoding.
 */
export function serializeManifest(m: Manifest): Uint8Array {
  const ordered = {
    schema: m.schema,
    type: m.type,
    version: m.version,
    created: m.created,
    files: m.files.map((f) => ({ path: f.path, size: f.size, sha384: f.sha384 })),
  };
  return new TextEncoder().encode(`${JSON.stringify(ordered, null, 2)}\n`);
}

/**
 * Parses manifest.json bytes: size cap, strict UTF-8, JSON without a BOM or
 * duplicate/`__proto__`/`constructor` keys (core/strict-json.ts), then the schema.
 */
export function parseManifest(bytes: Uint8Array, file: string): Manifest {
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new PackageError(
      "PKG_MANIFEST_TOO_LARGE",
      `${file}: manifest.json is ${bytes.length} bytes, limit is ${MAX_MANIFEST_BYTES}`,
      { file },
    );
  }
  let json: unknown;
  try {
    json = decodeStrictJson(bytes);
  } catch (e) {
    throw new PackageError(
      "PKG_MANIFEST_INVALID",
      `${file}: manifest.json is not strict UTF-8 JSON: ${(e as Error).message}`,
      {
        file,
        cause: e,
      },
    );
  }
  return validateManifest(json, file);
}

export function validateManifest(value: unknown, file: string): Manifest {
  const result = ManifestSchema.safeParse(value);
  if (result.success) return result.data;
  throw new PackageError(
    "PKG_MANIFEST_INVALID",
    `${file}: manifest.json invalid: ${summariseIssues(result.error.issues)}`,
    {
      file,
      details: {
        issues: result.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message })),
      },
    },
  );
}

/** "files.2.sha384: must be 96 lowercase hex digits; version: …" — at most five issues. */
function summariseIssues(issues: readonly z.core.$ZodIssue[]): string {
  const shown = issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.map(String).join(".") : "(root)"}: ${i.message}`);
  if (issues.length > 5) shown.push(`and ${issues.length - 5} more`);
  return shown.join("; ");
}
