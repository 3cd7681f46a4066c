/**
 * The requests a supervisor and a host process exchange, as zod schemas.
 * Both sides parse what they receive: the host because a bug in the
 * supervisor must fail loudly, the supervisor because a host runs content
 * and may be compromised — nothing it answers is trusted beyond its shape.
 *
 * supervisor → host: init, stageFile, validate, prepare, commit, discard,
 *                    unload, call, status, shutdown
 * host → supervisor: agent (agent actions, only for handlers that declared
 *                    them); notifications `evt` (caps.events.emit) and `log`
 */

import { HandlerError } from "../errors.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";
import { ProcViewRequestSchema } from "./proc-view.ts";

const Type = lazySchema(() => z.string().check(z.regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/)));
const Version = lazySchema(() => z.int().check(z.nonnegative()));
const Bytes = lazySchema(() => z.instanceof(Uint8Array));

export const InitArgs = lazySchema(() =>
  z.strictObject({
    group: z.string(),
    workDir: z.string(),
    handlers: z.array(
      z.object({
        type: Type,
        module: z.optional(z.string()),
        // Compared whole with the host's own handler's manifest, which its definition validated
        // (child.ts, sameManifest): what the supervisor sends need only be a JSON object. So a host
        // of built-in handlers, whose manifests were parsed at build time (builtins.macro.ts),
        // never builds the manifest schema.
        manifest: z.record(z.string(), z.unknown()),
      }),
    ),
    pathVars: z.object({ stateDir: z.string(), installDir: z.string() }),
    /** hosts.callTimeoutSeconds, for handlers that must finish a call before it (Capabilities.callTimeoutMs). */
    callTimeoutMs: z.optional(z.number().check(z.positive())),
    landlock: z.object({
      rules: z.array(z.object({ path: z.string(), access: z.int() })),
      connectPorts: z.array(z.int().check(z.gte(1), z.lte(65535))),
      enabled: z.boolean(),
    }),
  }),
);
export type InitArgs = z.infer<typeof InitArgs>;

export const InitResult = lazySchema(() =>
  z.strictObject({
    pid: z.int().check(z.positive()),
    uid: z.int().check(z.nonnegative()),
    gid: z.int().check(z.nonnegative()),
    landlock: z.object({
      abi: z.int().check(z.nonnegative()),
      fs: z.boolean(),
      net: z.boolean(),
      scoped: z.boolean(),
      missing: z.array(z.string().check(z.maxLength(4096))).check(z.maxLength(1000)),
      error: z.optional(z.string().check(z.maxLength(4096))),
      unrestrictedThreads: z.optional(z.array(z.string().check(z.maxLength(64))).check(z.maxLength(1024))),
    }),
    handlers: z
      .array(
        z.object({
          type: Type,
          ok: z.boolean(),
          error: z.optional(
            z.object({
              code: z.string().check(z.maxLength(64)),
              message: z.string().check(z.maxLength(16_384)),
            }),
          ),
        }),
      )
      .check(z.maxLength(1000)),
  }),
);
export type InitResult = z.infer<typeof InitResult>;

export const StageFileArgs = lazySchema(() =>
  z.strictObject({
    type: Type,
    version: Version,
    path: z.string(),
    data: Bytes,
    /** Set when `data` is only the file's head (the handler declares it headOnly): the whole file's size. */
    size: z.optional(z.int().check(z.nonnegative())),
  }),
);
export const ValidateArgs = lazySchema(() =>
  z.strictObject({ type: Type, version: Version, signingTime: z.string(), files: z.array(z.string()) }),
);
export const PrepareArgs = lazySchema(() => z.strictObject({ type: Type, version: Version }));
export const PrepareResult = lazySchema(() => z.strictObject({ preparedId: z.int().check(z.positive()) }));
export const PreparedArgs = lazySchema(() => z.strictObject({ preparedId: z.int().check(z.positive()) }));
export const TypeArgs = lazySchema(() => z.strictObject({ type: Type }));
export const CallArgs = lazySchema(() =>
  z.strictObject({ type: Type, method: z.string().check(z.maxLength(128)), args: z.unknown() }),
);
export const AgentCallArgs = lazySchema(() =>
  z.strictObject({ handler: Type, method: z.string().check(z.maxLength(64)), args: z.optional(z.unknown()) }),
);

export const HostViewArgs = lazySchema(() => z.strictObject({ handler: Type, req: ProcViewRequestSchema }));

export const HandlerStatusSchema = lazySchema(() => z.record(z.string(), z.unknown()));
export const CommitResult = lazySchema(() => z.strictObject({ status: z.optional(HandlerStatusSchema) }));
export const StatusResult = lazySchema(() =>
  z.strictObject({
    handlers: z
      .array(
        z.object({
          type: Type,
          state: z.enum(["loaded", "not-installed", "failed", "unloaded"]),
          version: z.nullable(Version),
          status: z.optional(HandlerStatusSchema),
        }),
      )
      .check(z.maxLength(1000)),
  }),
);
export type StatusResult = z.infer<typeof StatusResult>;

/** Parses `value` against `schema` or throws HND_IPC_PROTOCOL naming what the peer got wrong. */
export function parseWire<T>(schema: z.ZodMiniType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new HandlerError("HND_IPC_PROTOCOL", `${what}: ${z.prettifyError(r.error).slice(0, 1000)}`);
  }
  return r.data;
}
