/**
 * The inside of a host process (`agent host --group NAME`). Order matters:
 *
 *  1. move the IPC stream off fd 1 (stray console.log output from a handler
 *     goes to stderr instead of corrupting frames);
 *  2. on `init`, import every handler module of the group — from-source
 *     runs import .ts files lazily, which Landlock would refuse later;
 *  3. check each handler is the one the supervisor expects (same manifest);
 *  4. apply Landlock to itself (uid, netns, capabilities and rlimits were
 *     applied by the wrappers it was started through);
 *  5. only then accept content.
 *
 * Content arrives as bytes (stageFile), so no group needs to read the
 * content store. The host exits when its stdin closes: it never outlives
 * its supervisor.
 */
import { writeSync } from "node:fs";
import { ranCode } from "../code-release.ts";
import { byCodeUnit } from "../compare.ts";
import { COMPILED, deferredImportsSettled } from "../deferred-import.ts";
import { describeError, HandlerError, isOutpostError } from "../errors.ts";
import { createCapabilities } from "../handler/capabilities.ts";
import type { Capabilities, ContentHandler, ContentView, HandlerManifest } from "../handler/contract.ts";
import type { HandlerRegistry } from "../handler/registry.ts";
import { jitPolicyForWork } from "../jsc-options.ts";
import { writeStderr } from "../stdio.ts";
import { Channel } from "./channel.ts";
import { headOnlyView } from "./head-only.ts";
import { IdleGc } from "./idle-gc.ts";
import { applyLandlock, dup2Fd, dupFd, type LandlockResult } from "./landlock.ts";
import { expandManifest } from "./policy.ts";
import type { ProcView } from "./proc-view.ts";
import {
  CallArgs,
  InitArgs,
  type InitResult,
  PrepareArgs,
  PreparedArgs,
  parseWire,
  StageFileArgs,
  type StatusResult,
  TypeArgs,
  ValidateArgs,
} from "./protocol.ts";
import { attachSharedTransfer } from "./shared-transfer.ts";

interface Slot {
  handler: ContentHandler<unknown>;
  manifest: HandlerManifest;
  caps?: Capabilities;
  state: "loaded" | "not-installed" | "failed" | "unloaded";
  version: number | null;
  live?: unknown;
}

interface Staged {
  version: number;
  /** Each file's bytes (only its head for a headOnly file) and its whole size. */
  files: Map<string, { data: Uint8Array; size: number }>;
  view?: ContentView;
}

export interface HostChildOptions {
  group: string;
  /** Handlers built into this executable for this group (the entry point's registry). */
  builtins: HandlerRegistry;
  /** Every built-in handler, for one the group's registry lacks. */
  allBuiltins?: () => Promise<HandlerRegistry>;
  maxInboundBytes: number;
  maxOutboundBytes: number;
}

/** Finds the handler for `type` among a module's exports. */
function handlerFromModule(mod: Record<string, unknown>, type: string): ContentHandler<unknown> | undefined {
  for (const value of Object.values(mod)) {
    const h = value as Partial<ContentHandler<unknown>> | null;
    // Own properties only: reading `manifest` off another export (a lazy zod schema) would build it.
    if (
      h &&
      typeof h === "object" &&
      Object.hasOwn(h, "manifest") &&
      h.manifest?.name === type &&
      typeof h.validate === "function"
    ) {
      return h as ContentHandler<unknown>;
    }
  }
  return undefined;
}

/** JSON with object keys sorted, so two equal manifests compare equal whatever built them. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, val) =>
    val && typeof val === "object" && !Array.isArray(val)
      ? Object.fromEntries(Object.entries(val).sort(([a], [b]) => byCodeUnit(a, b)))
      : val,
  );
}

function sameManifest(a: HandlerManifest, b: Record<string, unknown>): boolean {
  return canonical(a) === canonical(b);
}

function contentView(type: string, version: number, signingTime: string, staged: Staged): ContentView {
  const file = (path: string) => {
    const f = staged.files.get(path);
    if (!f) {
      throw new HandlerError(
        "STORE_PATH_NOT_IN_MANIFEST",
        `${type} v${version}: ${path} is not in the manifest`,
        {
          file: path,
        },
      );
    }
    return f;
  };
  const read = (path: string) => file(path).data;
  return {
    type,
    version,
    signingTime,
    files: [...staged.files.keys()],
    read,
    readText: (path) => new TextDecoder("utf-8", { fatal: true }).decode(read(path)),
    size: (path) => file(path).size,
    // A headOnly file holds just its head here; headOnlyView keeps `bytes` within it.
    head: (path, bytes) => read(path).subarray(0, bytes),
  };
}

function asHandlerError(e: unknown, code: string, where: string): HandlerError {
  if (e instanceof HandlerError) return e;
  const d = describeError(e);
  return new HandlerError(isOutpostError(e) ? d.code : code, `${where}: ${d.message}`, { file: d.file });
}

export async function runHostChild(opts: HostChildOptions): Promise<void> {
  // Ctrl-C in the agent's terminal reaches the whole process group; the supervisor decides when hosts stop.
  process.on("SIGINT", () => {});
  // 1. The IPC stream gets its own descriptor; fd 1 becomes a second stderr.
  const ipcOut = dupFd(1);
  if (ipcOut < 0 || dup2Fd(2, 1) < 0) throw new Error("host: cannot set up the IPC descriptor (dup failed)");
  const send = (frame: Uint8Array) => {
    let off = 0;
    while (off < frame.length) off += writeSync(ipcOut, frame, off);
  };

  const slots = new Map<string, Slot>();
  const staged = new Map<string, Staged>();
  const prepared = new Map<number, { type: string; version: number; live: unknown }>();
  let nextPrepared = 1;
  let initialised = false;
  let workDir = "";
  let callTimeoutMs: number | undefined;
  let landlock: LandlockResult | undefined;

  const slot = (type: string): Slot => {
    const s = slots.get(type);
    if (!s) throw new HandlerError("HND_UNKNOWN_TYPE", `host ${opts.group}: no handler for ${type}`);
    return s;
  };
  const needInit = () => {
    if (!initialised) throw new HandlerError("HND_IPC_PROTOCOL", "host: init must come first");
  };

  const idleGc = new IdleGc();
  // The supervisor's transfer region (shared-transfer.ts), if it passed one: read-only, fd 3, no path.
  const shared = attachSharedTransfer();
  const channel: Channel = new Channel({
    send,
    ...(shared ? { sharedIn: shared } : {}),
    maxInbound: opts.maxInboundBytes,
    maxOutbound: opts.maxOutboundBytes,
    onProtocolError: (p) => {
      // The supervisor is the trusted side; a broken stream from it means it is gone or buggy.
      writeStderr(`host ${opts.group}: protocol error from supervisor: ${p.kind}: ${p.message}\n`);
      if (p.fatal) process.exit(75);
    },
    onRequest: async (method, rawArgs, ctx) => {
      // A status request (the supervisor refreshes every 15 s) leaves nothing for a collection, but
      // its code pages go back once the host is quiet again (code-release.ts).
      if (method !== "status") idleGc.touch();
      else ranCode();
      switch (method) {
        case "init": {
          if (initialised) throw new HandlerError("HND_IPC_PROTOCOL", "host: init sent twice");
          const args = parseWire(InitArgs, rawArgs, "init");
          workDir = args.workDir;
          callTimeoutMs = args.callTimeoutMs;
          const handlers: InitResult["handlers"] = [];
          // 2 + 3: all code in, checked against what the supervisor expects.
          for (const h of args.handlers) {
            try {
              let handler: ContentHandler<unknown> | undefined;
              if (h.module) handler = handlerFromModule(await import(h.module), h.type);
              handler ??= opts.builtins.get(h.type);
              if (!handler && opts.allBuiltins) handler = (await opts.allBuiltins()).get(h.type);
              if (!handler) {
                throw new HandlerError(
                  "HND_HOST_UNRESOLVED",
                  `${h.type}: not built into this executable and no module to import it from`,
                );
              }
              if (!sameManifest(handler.manifest, h.manifest)) {
                throw new HandlerError(
                  "HND_HOST_MANIFEST_MISMATCH",
                  `${h.type}: the host's handler declares a different manifest than the supervisor's`,
                );
              }
              const manifest = expandManifest(handler.manifest, args.pathVars);
              slots.set(h.type, { handler, manifest, state: "not-installed", version: null });
              handlers.push({ type: h.type, ok: true });
            } catch (e) {
              handlers.push({ type: h.type, ok: false, error: describeError(e) });
            }
          }
          // From source, modules a handler defers are files this process may not read once locked.
          await deferredImportsSettled();
          process.chdir(workDir);
          // 4. Irrevocable from here on.
          landlock = args.landlock.enabled
            ? applyLandlock({ rules: args.landlock.rules, connectPorts: args.landlock.connectPorts })
            : {
                abi: 0,
                fs: false,
                net: false,
                scoped: false,
                missing: [],
                error: "disabled by configuration",
              };
          // A thread that predates the restriction keeps the whole file system (landlock.ts,
          // threadsBeforeSandbox). The compiled agent loads its code from its own executable and has
          // none unless something did asynchronous I/O too early: a bug, so it refuses to run rather
          // than run half confined. From source, Bun's module loader started them (status says so).
          if (landlock.unrestrictedThreads && COMPILED) {
            throw new HandlerError(
              "HND_SANDBOX_THREADS",
              `host ${opts.group}: threads started before the sandbox would keep the whole file system (${landlock.unrestrictedThreads.join(", ")}); refusing to run handler code`,
              { details: { threads: landlock.unrestrictedThreads } },
            );
          }
          initialised = true;
          const result: InitResult = {
            pid: process.pid,
            uid: process.getuid?.() ?? 0,
            gid: process.getgid?.() ?? 0,
            landlock,
            handlers,
          };
          return result;
        }
        case "stageFile": {
          needInit();
          const a = parseWire(StageFileArgs, rawArgs, "stageFile");
          slot(a.type);
          let s = staged.get(a.type);
          if (!s || s.version !== a.version) {
            s = { version: a.version, files: new Map() };
            staged.set(a.type, s);
          }
          // Bytes in the transfer region are the supervisor's to reuse once this answer is sent:
          // kept as a copy (content-loader.ts sends files there when they fit).
          const data = shared && a.data.buffer === shared ? a.data.slice() : a.data;
          s.files.set(a.path, { data, size: a.size ?? a.data.byteLength });
          return null;
        }
        case "validate": {
          needInit();
          const a = parseWire(ValidateArgs, rawArgs, "validate");
          const sl = slot(a.type);
          let s = staged.get(a.type);
          if (!s || s.version !== a.version) {
            s = { version: a.version, files: new Map() };
            staged.set(a.type, s);
          }
          const missing = a.files.filter((f) => !s.files.has(f));
          if (missing.length > 0 || s.files.size !== a.files.length) {
            throw new HandlerError(
              "HND_IPC_PROTOCOL",
              `${a.type} v${a.version}: content was not staged whole`,
            );
          }
          s.view = headOnlyView(contentView(a.type, a.version, a.signingTime, s), sl.manifest);
          try {
            await sl.handler.validate(s.view);
          } catch (e) {
            throw asHandlerError(e, "HND_VALIDATION_FAILED", `${a.type} v${a.version}`);
          }
          return null;
        }
        case "prepare": {
          needInit();
          const a = parseWire(PrepareArgs, rawArgs, "prepare");
          const sl = slot(a.type);
          const s = staged.get(a.type);
          if (!s?.view || s.version !== a.version) {
            throw new HandlerError("HND_IPC_PROTOCOL", `${a.type} v${a.version}: prepare before validate`);
          }
          staged.delete(a.type);
          sl.caps ??= capabilities(a.type, sl.manifest);
          let live: unknown;
          try {
            live = await sl.handler.load(s.view, sl.caps);
          } catch (e) {
            throw asHandlerError(e, "HND_LOAD_FAILED", `${a.type} v${a.version}`);
          }
          const preparedId = nextPrepared++;
          prepared.set(preparedId, { type: a.type, version: a.version, live });
          return { preparedId };
        }
        case "commit": {
          needInit();
          const { preparedId } = parseWire(PreparedArgs, rawArgs, "commit");
          const p = prepared.get(preparedId);
          if (!p) throw new HandlerError("HND_IPC_PROTOCOL", `commit: unknown prepared id ${preparedId}`);
          prepared.delete(preparedId);
          const sl = slot(p.type);
          const old = sl.live;
          const hadOld = sl.state === "loaded";
          sl.live = p.live;
          sl.version = p.version;
          sl.state = "loaded";
          if (hadOld) await release(sl, old);
          // The staged payload (up to hundreds of MiB) and the old content are garbage now.
          idleGc.soon();
          return { status: statusOf(sl) };
        }
        case "discard": {
          needInit();
          const { preparedId } = parseWire(PreparedArgs, rawArgs, "discard");
          const p = prepared.get(preparedId);
          prepared.delete(preparedId);
          if (p) await release(slot(p.type), p.live);
          idleGc.soon();
          return null;
        }
        case "unload": {
          needInit();
          const { type } = parseWire(TypeArgs, rawArgs, "unload");
          const sl = slot(type);
          staged.delete(type);
          if (sl.state === "loaded") await release(sl, sl.live);
          sl.live = undefined;
          sl.state = "unloaded";
          idleGc.soon();
          return null;
        }
        case "call": {
          needInit();
          const a = parseWire(CallArgs, rawArgs, "call");
          const sl = slot(a.type);
          if (sl.state !== "loaded") {
            throw new HandlerError("HND_NOT_LOADED", `${a.type} has no content loaded (${sl.state})`);
          }
          if (!sl.handler.call) throw new HandlerError("HND_NO_API", `${a.type} offers no API`);
          const policy = jitPolicyForWork();
          if (policy !== undefined) Bun.unsafe.setJITPolicy(policy);
          try {
            return await sl.handler.call(sl.live, a.method, a.args, { signal: ctx.signal });
          } catch (e) {
            throw asHandlerError(e, "HND_CALL_FAILED", a.type);
          }
        }
        case "status": {
          needInit();
          const out: StatusResult = { handlers: [] };
          for (const [type, sl] of slots) {
            out.handlers.push({ type, state: sl.state, version: sl.version, status: statusOf(sl) });
          }
          return out;
        }
        case "shutdown": {
          for (const sl of slots.values()) {
            if (sl.state === "loaded") await release(sl, sl.live);
            sl.state = "unloaded";
          }
          // Exit after the answer is on its way (send is synchronous).
          setImmediate(() => process.exit(0));
          return null;
        }
        default:
          throw new HandlerError("HND_NO_METHOD", `host: unknown request ${method}`);
      }
    },
  });

  const log = (level: "info" | "warn", msg: string, f?: Record<string, unknown>) =>
    channel.notify({ t: "log", level, msg: msg.slice(0, 4096), f: safeFields(f) });

  function capabilities(type: string, manifest: HandlerManifest): Capabilities {
    return createCapabilities(manifest, {
      log: {
        info: (m, f) => log("info", m, { handler: type, ...f }),
        warn: (m, f) => log("warn", m, { handler: type, ...f }),
      },
      emit: (t, f) => channel.notify({ t: "evt", type: t, f: safeFields(f) }),
      workDir,
      callTimeoutMs,
      // The supervisor checks again that this handler declared agent access.
      agentCall: manifest.privileges.agent
        ? (method, args) => channel.request("agent", { handler: type, method, args }, { timeoutMs: 120_000 })
        : undefined,
      // The supervisor checks again that this handler and its group declared hostView.
      procView: manifest.privileges.hostView
        ? async (req) =>
            (await channel.request("hostView", { handler: type, req }, { timeoutMs: 60_000 })) as ProcView
        : undefined,
    });
  }

  async function release(sl: Slot, live: unknown): Promise<void> {
    try {
      await sl.handler.unload?.(live);
    } catch (e) {
      log("warn", "handler unload failed", { handler: sl.manifest.name, ...describeError(e) });
    }
  }

  function statusOf(sl: Slot): Record<string, unknown> | undefined {
    if (sl.state !== "loaded" || !sl.handler.status) return undefined;
    try {
      return safeFields(sl.handler.status(sl.live));
    } catch (e) {
      return { statusError: describeError(e).message };
    }
  }

  // Reads frames until the supervisor closes our stdin, then leaves.
  for await (const chunk of Bun.stdin.stream()) channel.feed(chunk);
  channel.close(new HandlerError("HND_HOST_DOWN", "supervisor closed the channel"));
  process.exit(0);
}

/** Fields that can be framed; anything that cannot becomes a note rather than a lost message. */
function safeFields(f: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!f) return undefined;
  try {
    return JSON.parse(JSON.stringify(f));
  } catch (e) {
    return { fieldsError: (e as Error).message };
  }
}
