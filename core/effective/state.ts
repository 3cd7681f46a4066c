/**
 * What the effective-config service keeps on disk, under STATE/effective/:
 *
 *   state.json              accepted overlays, last failures, flag memory (this schema)
 *   bundle.json(.p7s)       the last tenant bundle that passed B1–B5, as fetched
 *   local/<name>.xml        documents applied with `agent policy apply` (air-gapped hosts)
 *
 * Written atomically (temp + rename + fsync), read through zod: a damaged
 * file is treated as absent (logged), never as a reason not to start.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { atomicWriteFile, atomicWriteJson } from "../fsutil.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";
import { DOCUMENT_NAME_RE } from "./bundle.ts";

export const effectivePaths = (stateDir: string) => {
  const root = join(stateDir, "effective");
  return {
    root,
    state: join(root, "state.json"),
    bundle: join(root, "bundle.json"),
    bundleSig: join(root, "bundle.json.p7s"),
    local: join(root, "local"),
  };
};

const OverlayValueSchema = lazySchema(() =>
  z.strictObject({
    key: z.string(),
    value: z.unknown(),
    rule: z.string(),
    document: z.string(),
    line: z.optional(z.int()),
  }),
);

export const OverlaySchema = lazySchema(() =>
  z.strictObject({
    file: z.string(),
    contentVersion: z.optional(z.int()),
    values: z.array(OverlayValueSchema),
  }),
);

export const FailureSchema = lazySchema(() =>
  z.strictObject({
    file: z.string(),
    code: z.string(),
    message: z.string(),
    rule: z.optional(z.string()),
    /** The config key a refusal concerns (allow-list, schema). */
    key: z.optional(z.string()),
    document: z.optional(z.string()),
    line: z.optional(z.int()),
    at: z.string(),
  }),
);

export const PersistedSchema = lazySchema(() =>
  z.strictObject({
    schema: z.literal(1),
    fetch: z._default(
      z.object({
        etag: z.optional(z.string()),
        lastSerial: z.optional(z.int()),
        lastAttempt: z.optional(z.string()),
        lastSuccess: z.optional(z.string()),
        lastError: z.optional(z.object({ code: z.string(), message: z.string(), at: z.string() })),
      }),
      {},
    ),
    overlays: z._default(z.array(OverlaySchema), []),
    failures: z._default(z.array(FailureSchema), []),
    supplement: z._default(
      z.nullable(
        z.object({
          type: z.string(),
          version: z.int(),
          flags: z.record(z.string(), z.enum(["off", "available"])),
        }),
      ),
      null,
    ),
    serviceLastKnown: z._default(z.record(z.string(), z.enum(["on", "off"])), {}),
    /** The service's latest answer (null: missing or unreachable at the last attempt). */
    serviceAnswer: z._default(z.nullable(z.record(z.string(), z.string())), null),
    appliedAt: z.optional(z.string()),
  }),
);

export type Persisted = z.infer<typeof PersistedSchema>;
export type Failure = z.infer<typeof FailureSchema>;

export const emptyPersisted = (): Persisted => PersistedSchema.parse({ schema: 1 });

export function readPersisted(
  stateDir: string,
  warn: (msg: string, f: Record<string, unknown>) => void,
): Persisted {
  const file = effectivePaths(stateDir).state;
  if (!existsSync(file)) return emptyPersisted();
  try {
    return PersistedSchema.parse(JSON.parse(readFileSync(file, "utf8")));
  } catch (e) {
    warn("effective config state unreadable; starting from agent.json alone", {
      file,
      error: (e as Error).message,
    });
    return emptyPersisted();
  }
}

export function writePersisted(stateDir: string, p: Persisted): void {
  mkdirSync(effectivePaths(stateDir).root, { recursive: true, mode: 0o700 });
  atomicWriteJson(effectivePaths(stateDir).state, p, 0o600);
}

/** Signature first, bundle second: a reader that races sees a mismatched pair and refuses it (B1). */
export function writeBundle(stateDir: string, bytes: Uint8Array, sig: Uint8Array): void {
  const p = effectivePaths(stateDir);
  atomicWriteFile(p.bundleSig, sig, 0o600);
  atomicWriteFile(p.bundle, bytes, 0o600);
}

export function readBundleBytes(stateDir: string): Uint8Array | null {
  const p = effectivePaths(stateDir).bundle;
  return existsSync(p) ? readFileSync(p) : null;
}

export function writeLocalDocument(stateDir: string, name: string, xml: string): string {
  if (!DOCUMENT_NAME_RE.test(name)) throw new Error(`bad document name ${name}`);
  const path = join(effectivePaths(stateDir).local, name);
  atomicWriteFile(path, xml, 0o600);
  return path;
}

/** Removes a local document; false when there was none by that name. */
export function removeLocalDocument(stateDir: string, name: string): boolean {
  if (!DOCUMENT_NAME_RE.test(name)) return false;
  const path = join(effectivePaths(stateDir).local, name);
  if (!existsSync(path)) return false;
  rmSync(path);
  return true;
}

export function readLocalDocuments(stateDir: string): { name: string; xml: string }[] {
  const dir = effectivePaths(stateDir).local;
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => DOCUMENT_NAME_RE.test(n))
    .sort()
    .map((name) => ({ name, xml: readFileSync(join(dir, name), "utf8") }));
}
