/**
 * The contract between the core and a content handler. The core knows
 * handlers only through this interface and the registry; it never imports a
 * concrete handler. A handler declares the privileges it needs in its
 * manifest; the host enforces them (issue: handler host) and hands the
 * handler only capability objects matching that declaration.
 */

import type { ProcView, ProcViewRequest } from "../host/proc-view.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";

export const FsPrivilegeSchema = lazySchema(() =>
  z.discriminatedUnion("mode", [
    z.object({ mode: z.literal("none") }),
    z.object({
      mode: z.literal("read-only"),
      paths: z.array(z.string().check(z.minLength(1))).check(z.minLength(1)),
    }),
    z.object({
      mode: z.literal("read-write"),
      paths: z.array(z.string().check(z.minLength(1))).check(z.minLength(1)),
    }),
  ]),
);

/** `dns`, `https:<host>`, `http:<host>` — named endpoints, never "any". */
export const NetEndpointSchema = lazySchema(() =>
  z
    .string()
    .check(z.regex(/^(dns|https?:[a-z0-9.-]+(:\d+)?)$/i, "net endpoint must be 'dns' or 'https:<host>'")),
);

export const PrivilegesSchema = lazySchema(() =>
  z.strictObject({
    runAs: z.enum(["agent", "root"]),
    fs: FsPrivilegeSchema,
    net: z.union([z.literal("none"), z.array(NetEndpointSchema).check(z.minLength(1))]),
    exec: z.boolean(),
    /** May ask the supervisor to run agent actions (update now, verify or roll back content). */
    agent: z._default(z.boolean(), false),
    /**
     * May ask the supervisor for the host's process view (link targets, environment, memory map of
     * every process: core/host/proc-view.ts) that Landlock's ptrace scoping hides from a sandboxed host.
     */
    hostView: z._default(z.boolean(), false),
  }),
);

export const LimitsSchema = lazySchema(() =>
  z.strictObject({
    memoryMb: z._default(z.int().check(z.positive(), z.lte(16384)), 256),
    cpuSeconds: z._default(z.int().check(z.positive(), z.lte(86400)), 600),
  }),
);

export const HandlerManifestSchema = lazySchema(() =>
  z.strictObject({
    /** The content type this handler owns, e.g. "Hmpa_data". */
    name: z.string().check(z.regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/)),
    description: z.string().check(z.minLength(1)),
    /** Host process group the handler runs in (scanner, behavior, query, repair, hmpa, …). */
    group: z.string().check(z.regex(/^[a-z][a-z0-9-]{0,31}$/)),
    privileges: PrivilegesSchema,
    limits: z._default(LimitsSchema, { memoryMb: 256, cpuSeconds: 600 }),
    /**
     * When the update cycle installs this type. "on-demand": never by the
     * scheduled cycle, only by a cycle that names it (e.g. CRT, fetched by
     * `agent install --remove-incompatible` and removed afterwards). Absent: scheduled.
     */
    install: z.optional(z.enum(["scheduled", "on-demand"])),
    /** Largest package the handler accepts; the update client enforces it before download. */
    maxPackageBytes: z._default(z.int().check(z.positive()), 512 * 1024 * 1024),
    /**
     * Roles the handler plays for the core beyond serving its own API, e.g.
     * "config.overlays" (policy → config values) or "config.flags" (flags
     * supplement); the effective-config service (core/effective) asks only these.
     */
    contributes: z.optional(z.array(z.enum(["config.overlays", "config.flags", "agent.software"]))),
    /**
     * Payload files the handler reads only the start of: path → how many leading bytes. The handler
     * gets them with `view.head(path, n)` and the file's size with `view.size(path)`; `view.read` of
     * such a file is refused (HND_HEAD_ONLY). The supervisor still checks the whole file's SHA-384,
     * streaming it, and sends a host process only the head: a 120 MiB executable (AgentSoftware) is
     * never whole in either heap, nor copied through a pipe, on every start.
     */
    headOnly: z.optional(
      z.record(z.string().check(z.minLength(1)), z.int().check(z.positive(), z.lte(1024 * 1024))),
    ),
    /**
     * Per-method IPC budget for `call`, in seconds, for methods that legitimately run longer than
     * hosts.callTimeoutSeconds (a scheduled query bounded by its own wall limit). The larger wins.
     */
    callTimeoutSeconds: z.optional(z.record(z.string(), z.number().check(z.positive(), z.lte(7 * 86400)))),
  }),
);

export type Privileges = z.infer<typeof PrivilegesSchema>;
export type HandlerManifest = z.infer<typeof HandlerManifestSchema>;
export type HandlerManifestInput = z.input<typeof HandlerManifestSchema>;

/**
 * A verified, staged package as a handler sees it: read-only access to the
 * payload files, nothing else. Paths are relative to `payload/`.
 */
export interface ContentView {
  readonly type: string;
  readonly version: number;
  /** ISO time from the CMS signingTime attribute. */
  readonly signingTime: string;
  /** Payload file paths (relative to payload/), as listed in the signed manifest. */
  readonly files: readonly string[];
  read(path: string): Uint8Array;
  readText(path: string): string;
  /** A payload file's size, as the signed manifest lists it. */
  size(path: string): number;
  /**
   * The first `bytes` bytes of a payload file (all of it when shorter). The whole file is still
   * checked against the signed manifest, but need not be held: the way to read a file the
   * handler's manifest declares `headOnly`.
   */
  head(path: string, bytes: number): Uint8Array;
}

/**
 * A view whose `size` and `head` (and `readText`, unless given) come from `read`: for views over
 * bytes already in memory (a verified package, a test's files), where reading the whole file costs
 * nothing extra.
 */
export function viewOverBytes(
  v: Omit<ContentView, "size" | "head" | "readText"> & { readText?: ContentView["readText"] },
): ContentView {
  const read = (path: string) => v.read(path);
  return {
    readText: (path) => new TextDecoder("utf-8", { fatal: true }).decode(read(path)),
    ...v,
    size: (path) => read(path).byteLength,
    head: (path, bytes) => read(path).subarray(0, bytes),
  };
}

export interface FsCapability {
  /** Paths must match the handler's declared globs; anything else is HND_FS_DENIED. */
  readFile(path: string): Uint8Array;
  readText(path: string): string;
  list(dir: string): string[];
  stat(path: string): {
    size: number;
    mtimeMs: number;
    mode: number;
    uid: number;
    gid: number;
    isFile: boolean;
    isDirectory: boolean;
  } | null;
  /** Present only with fs mode read-write. */
  writeFile?(path: string, data: Uint8Array | string, mode?: number): void;
  chmod?(path: string, mode: number): void;
  chown?(path: string, uid: number, gid: number): void;
  remove?(path: string): void;
}

export interface NetCapability {
  /** fetch restricted to the declared `https:<host>` / `http:<host>` endpoints. */
  fetch(url: string, init?: RequestInit): Promise<Response>;
}

export interface ExecCapability {
  run(
    cmd: string[],
    opts?: { timeoutMs?: number; stdin?: Uint8Array },
  ): Promise<{ code: number; stdout: string; stderr: string }>;
}

/**
 * Capabilities granted to a handler. `log`, `events` and `workDir` are
 * always present (they reach nothing outside the agent); `fs`, `net`,
 * `exec` and `agent` exist only when the manifest declared them, so a
 * handler's code cannot even name a capability it did not ask for. The OS
 * sandbox of its host process enforces the same limits underneath.
 */
export interface Capabilities {
  readonly log: {
    info(msg: string, f?: Record<string, unknown>): void;
    warn(msg: string, f?: Record<string, unknown>): void;
  };
  /** Publishes to the agent's event stream (detections, telemetry). */
  readonly events: { emit(type: string, fields?: Record<string, unknown>): void };
  /** The host group's private writable directory (spill space for large objects, caches). */
  readonly workDir: string;
  readonly fs?: FsCapability;
  readonly net?: NetCapability;
  readonly exec?: ExecCapability;
  /**
   * How long one call into this handler may take before the supervisor gives
   * up on it (hosts.callTimeoutSeconds); absent in-process. A handler that
   * runs content (Lua rules) stops it well before, so a slow rule is its own
   * fault rather than a host kill.
   */
  readonly callTimeoutMs?: number;
  /** Agent actions (update, verifyContent, rollback, status); only with privileges.agent. */
  readonly agent?: { call(method: string, args?: unknown): Promise<unknown> };
  /** privileges.hostView: the process view the supervisor reads outside the sandbox (core/host/proc-view.ts). */
  readonly hostView?: {
    procView(req: ProcViewRequest): Promise<ProcView>;
  };
}

export interface CallContext {
  readonly signal: AbortSignal;
}

export interface HandlerStatus {
  /** Free-form, JSON-serialisable facts for `agent status` (entry counts, load time…). */
  [k: string]: unknown;
}

/**
 * A content handler. `validate` must be pure and thorough: anything that
 * could make `load` fail should fail here, before the switch. `load` builds
 * the live object; `unload` releases it. `call` serves the handler's API
 * (e.g. `hmpa check`) with JSON-serialisable arguments and results so it can
 * cross a process boundary unchanged.
 */
export interface ContentHandler<Loaded = unknown> {
  readonly manifest: HandlerManifest;
  validate(content: ContentView): Promise<void> | void;
  load(content: ContentView, caps: Capabilities): Promise<Loaded> | Loaded;
  unload?(loaded: Loaded): Promise<void> | void;
  status?(loaded: Loaded): HandlerStatus;
  /**
   * The handler's API: method name → JSON in, JSON out. `ctx.signal` aborts
   * when the caller gave up (timeout, cancellation); long calls should stop.
   */
  call?(loaded: Loaded, method: string, args: unknown, ctx?: CallContext): Promise<unknown> | unknown;
}

/**
 * Defines a built-in handler from a manifest that is already HandlerManifestSchema's output: its
 * type's `parsedManifest()` (handlers/<Type>/manifest.ts), imported `with { type: "macro" }`, ran
 * when the executable was built, and the handler holds the result as a literal (a manifest that
 * does not parse fails the build). A host process then neither builds the manifest schema nor
 * parses its handlers' manifests when it starts (issue 21); handlers/manifests.test.ts checks that
 * every built-in's manifest is its own, parsed.
 */
export function defineParsedHandler<L>(def: ContentHandler<L>): ContentHandler<L> {
  return { ...def };
}

/** Defines a handler, validating its manifest at definition (i.e. build and load) time. */
export function defineHandler<L>(
  def: Omit<ContentHandler<L>, "manifest"> & { manifest: HandlerManifestInput },
): ContentHandler<L> {
  const manifest = HandlerManifestSchema.parse(def.manifest);
  return { ...def, manifest };
}
