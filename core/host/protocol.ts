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
import { z } from "zod";
import { HandlerError } from "../errors.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { ProcViewRequestSchema } from "./proc-view.ts";

const Type = lazySchema(() => z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/));
const Version = lazySchema(() => z.number().int().nonnegative());
const Bytes = lazySchema(() => z.instanceof(Uint8Array));

export const InitArgs = lazySchema(() =>
  z
    .object({
      group: z.string(),
      workDir: z.string(),
      handlers: z.array(
        z.object({
          type: Type,
          module: z.string().optional(),
          // Compared whole with the host's own handler's manifest, which its definition validated
          // (child.ts, sameManifest): what the supervisor sends need only be a JSON object. So a host
          // of built-in handlers, whose manifests were parsed at build time (builtins.macro.ts),
          // never builds the manifest schema.
          manifest: z.record(z.string(), z.unknown()),
        }),
      ),
      pathVars: z.object({ stateDir: z.string(), installDir: z.string() }),
      /** hosts.callTimeoutSeconds, for handlers that must finish a call before it (Capabilities.callTimeoutMs). */
      callTimeoutMs: z.number().positive().optional(),
      landlock: z.object({
        rules: z.array(z.object({ path: z.string(), access: z.number().int() })),
        connectPorts: z.array(z.number().int().min(1).max(65535)),
        enabled: z.boolean(),
      }),
    })
    .strict(),
);
export type InitArgs = z.infer<typeof InitArgs>;

export const InitResult = lazySchema(() =>
  z
    .object({
      pid: z.number().int().positive(),
      uid: z.number().int().nonnegative(),
      gid: z.number().int().nonnegative(),
      landlock: z.object({
        abi: z.number().int().nonnegative(),
        fs: z.boolean(),
        net: z.boolean(),
        scoped: z.boolean(),
        missing: z.array(z.string().max(4096)).max(1000),
        error: z.string().max(4096).optional(),
        unrestrictedThreads: z.array(z.string().max(64)).max(1024).optional(),
      }),
      handlers: z
        .array(
          z.object({
            type: Type,
            ok: z.boolean(),
            error: z.object({ code: z.string().max(64), message: z.string().max(16_384) }).optional(),
          }),
        )
        .max(1000),
    })
    .strict(),
);
export type InitResult = z.infer<typeof InitResult>;

export const StageFileArgs = lazySchema(() =>
  z
    .object({
      type: Type,
      version: Version,
      path: z.string(),
      data: Bytes,
      /** Set when `data` is only the file's head (the handler declares it headOnly): the whole file's size. */
      size: z.number().int().nonnegative().optional(),
    })
    .strict(),
);
export const ValidateArgs = lazySchema(() =>
  z.object({ type: Type, version: Version, signingTime: z.string(), files: z.array(z.string()) }).strict(),
);
export const PrepareArgs = lazySchema(() => z.object({ type: Type, version: Version }).strict());
export const PrepareResult = lazySchema(() => z.object({ preparedId: z.number().int().positive() }).strict());
export const PreparedArgs = lazySchema(() => z.object({ preparedId: z.number().int().positive() }).strict());
export const TypeArgs = lazySchema(() => z.object({ type: Type }).strict());
export const CallArgs = lazySchema(() =>
  z.object({ type: Type, method: z.string().max(128), args: z.unknown() }).strict(),
);
export const AgentCallArgs = lazySchema(() =>
  z.object({ handler: Type, method: z.string().max(64), args: z.unknown().optional() }).strict(),
);

export const HostViewArgs = lazySchema(() =>
  z.object({ handler: Type, req: ProcViewRequestSchema }).strict(),
);

export const HandlerStatusSchema = lazySchema(() => z.record(z.string(), z.unknown()));
export const CommitResult = lazySchema(() => z.object({ status: HandlerStatusSchema.optional() }).strict());
export const StatusResult = lazySchema(() =>
  z
    .object({
      handlers: z
        .array(
          z.object({
            type: Type,
            state: z.enum(["loaded", "not-installed", "failed", "unloaded"]),
            version: Version.nullable(),
            status: HandlerStatusSchema.optional(),
          }),
        )
        .max(1000),
    })
    .strict(),
);
export type StatusResult = z.infer<typeof StatusResult>;

/** Parses `value` against `schema` or throws HND_IPC_PROTOCOL naming what the peer got wrong. */
export function parseWire<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new HandlerError("HND_IPC_PROTOCOL", `${what}: ${z.prettifyError(r.error).slice(0, 1000)}`);
  }
  return r.data;
}
