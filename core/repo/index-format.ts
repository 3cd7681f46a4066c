/**
 * The repository index: one signed JSON document per release group naming
 * the package each content type should run. Parsed strictly, with a size cap
 * before parsing, since it arrives from the network and is read before its
 * packages are.
 *
 *   REPO/groups/<group>/index.json   this document
 *   REPO/groups/<group>/index.p7s    detached CMS signature over its exact bytes
 *   REPO/packages/<Type>/<Type>-<version>-<sha384 first 16 hex>.tar
 */

import { UpdateError } from "../errors.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";
import { decodeStrictJson } from "../strict-json.ts";

/** An index is a few KiB per content type; refuse anything larger before parsing it. */
export const MAX_INDEX_BYTES = 1024 * 1024;
export const GROUP_NAME_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;
/** Same rule as a handler's name: the content type is the handler's name. */
export const CONTENT_TYPE_RE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
export const DEFAULT_EXPIRES_DAYS = 7;

const SAFE_SEGMENT_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/**
 * A package path is resolved against the repository URL by the agent, so it
 * must stay inside packages/: relative, no `.`/`..`/empty segments, no
 * backslashes, query or fragment characters, nothing percent-encoded.
 */
export const PackagePathSchema = lazySchema(() =>
  z.string().check(
    z.maxLength(512),
    z.refine((p) => {
      const parts = p.split("/");
      return (
        parts.length >= 2 && parts[0] === "packages" && parts.slice(1).every((s) => SAFE_SEGMENT_RE.test(s))
      );
    }, "must be a relative path under packages/ made of [A-Za-z0-9._-] segments, without '.' or '..'"),
  ),
);

const entryFields = {
  version: z.int().check(z.positive(), z.lte(Number.MAX_SAFE_INTEGER)),
  path: PackagePathSchema,
  size: z.int().check(z.positive(), z.lte(Number.MAX_SAFE_INTEGER)),
  sha384: z.string().check(z.regex(/^[0-9a-f]{96}$/, "must be 96 lowercase hex digits")),
};

/** The version a group ran before the current one, for agents whose policy keeps them one behind (N-1). */
export const PreviousEntrySchema = lazySchema(() => z.strictObject(entryFields));

export const IndexEntrySchema = lazySchema(() =>
  z.strictObject({ ...entryFields, previous: z.optional(PreviousEntrySchema) }).check(
    z.refine((e) => e.previous === undefined || e.previous.version < e.version, {
      path: ["previous", "version"],
      message: "must be lower than the entry's version",
    }),
  ),
);

export const RepoIndexSchema = lazySchema(() =>
  z
    .strictObject({
      schema: z.literal(1),
      group: z.string().check(z.regex(GROUP_NAME_RE, "must match /^[a-z0-9][a-z0-9-]{0,63}$/")),
      serial: z.int().check(z.positive(), z.lte(Number.MAX_SAFE_INTEGER)),
      issued: z.iso.datetime(),
      expires: z.iso.datetime(),
      content: z.record(
        z.string().check(z.regex(CONTENT_TYPE_RE, "content type must match /^[A-Za-z][A-Za-z0-9_]{0,63}$/")),
        IndexEntrySchema,
      ),
    })
    .check(
      z.refine((i) => Date.parse(i.expires) > Date.parse(i.issued), {
        path: ["expires"],
        message: "must be later than issued",
      }),
    ),
);

export type IndexEntry = z.infer<typeof IndexEntrySchema>;
export type PreviousEntry = z.infer<typeof PreviousEntrySchema>;
export type RepoIndex = z.infer<typeof RepoIndexSchema>;

export function INDEX_PATH(group: string): string {
  return `groups/${checkGroup(group)}/index.json`;
}

export function INDEX_SIG_PATH(group: string): string {
  return `groups/${checkGroup(group)}/index.p7s`;
}

/** Where publish stores a package: content-addressed, so a published file never changes. */
export function packagePath(type: string, version: number, sha384: string): string {
  return `packages/${type}/${type}-${version}-${sha384.slice(0, 16)}.tar`;
}

export function checkGroup(group: string): string {
  if (!GROUP_NAME_RE.test(group)) {
    throw new UpdateError(
      "IDX_BAD_GROUP",
      `invalid group name ${JSON.stringify(group)}: must match ${GROUP_NAME_RE}`,
    );
  }
  return group;
}

/**
 * Parses index.json bytes: size cap (IDX_TOO_LARGE), strict UTF-8 + JSON
 * (no BOM, no duplicate or `__proto__`/`constructor` keys) + schema (IDX_INVALID). The signature is the caller's to check, over the same
 * bytes, before trusting the result.
 */
export function parseIndex(bytes: Uint8Array, file: string): RepoIndex {
  if (bytes.byteLength > MAX_INDEX_BYTES) {
    throw new UpdateError(
      "IDX_TOO_LARGE",
      `${file}: ${bytes.byteLength} bytes, limit is ${MAX_INDEX_BYTES}`,
      { file },
    );
  }
  let json: unknown;
  try {
    json = decodeStrictJson(bytes);
  } catch (e) {
    throw new UpdateError("IDX_INVALID", `${file}: index is not strict UTF-8 JSON: ${(e as Error).message}`, {
      file,
      cause: e,
    });
  }
  const result = RepoIndexSchema.safeParse(json);
  if (!result.success) {
    const issues = result.error.issues.map((i) => ({
      path: i.path.map(String).join("."),
      message: i.message,
    }));
    const shown = issues.slice(0, 5).map((i) => `${i.path || "(root)"}: ${i.message}`);
    if (issues.length > 5) shown.push(`and ${issues.length - 5} more`);
    throw new UpdateError("IDX_INVALID", `${file}: index invalid: ${shown.join("; ")}`, {
      file,
      details: { issues },
    });
  }
  return result.data;
}

/** The exact bytes publish signs and serves. */
export function serializeIndex(index: RepoIndex): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(index, null, 2)}\n`);
}
