/**
 * The built-in handlers by manifest, their code loaded on first use. A
 * supervisor whose handlers run in host processes (HostManager) needs only
 * what the manifests say — group, privileges, limits — and each host
 * process imports its own group's code (host-registry.ts). So a one-shot
 * command (`agent scan` offline) does not evaluate every handler's modules
 * before it can start the one scanner host it needs: those modules are
 * ~110 ms of CPU and ~10 MB in the compiled agent (bench/scan-startup.ts).
 *
 * Each entry is the real handler behind a forwarder: `validate` and `load`
 * import the handler's module and call it, and the optional methods are
 * those of the real handler once loaded (`load` comes first). index.ts is
 * the eager registry; handlers/manifests.test.ts checks both agree.
 */
import { HandlerError } from "../core/errors.ts";
import type { ContentHandler, HandlerManifest } from "../core/handler/contract.ts";
import { HandlerRegistry } from "../core/handler/registry.ts";
import { parsedBuiltinGroups, parsedBuiltinManifests } from "./builtins.macro.ts" with { type: "macro" };
import { handlerFor } from "./host-registry.ts";

/** A handler known by its manifest whose code is imported by `load` (and `validate`) on first use. */
export function deferredHandler(
  manifest: HandlerManifest,
  importHandler: () => Promise<ContentHandler<unknown>>,
): ContentHandler<unknown> {
  let real: ContentHandler<unknown> | undefined;
  const code = async () => {
    real ??= await importHandler();
    return real;
  };
  const loaded = (what: string): ContentHandler<unknown> => {
    if (!real) throw new HandlerError("HND_NOT_LOADED", `${manifest.name}: ${what} before load`);
    return real;
  };
  return {
    manifest,
    validate: async (view) => (await code()).validate(view),
    load: async (view, caps) => (await code()).load(view, caps),
    unload: (live) => loaded("unload").unload?.(live),
    status: (live) => loaded("status").status?.(live) ?? {},
    call: (live, method, args, ctx) => {
      const h = loaded("call");
      if (!h.call) throw new HandlerError("HND_NO_API", `${manifest.name} offers no API`);
      return h.call(live, method, args, ctx);
    },
  };
}

export interface ManifestRegistryOptions {
  /**
   * Only the handlers of these host groups, plus every handler that contributes to the agent's
   * own state (`manifest.contributes`: policy overlays, flags, agent software — what the effective
   * config is computed from). An agent built on it loads, and starts hosts for, nothing else:
   * `agent scan` offline needs the scanner group, not the seven others an endpoint has installed.
   */
  groups?: readonly string[];
  /** With `groups`: also the contributing handlers (default true; false when the agent will not recompute its state). */
  contributors?: boolean;
}

// Literals, parsed when the executable was built (builtins.macro.ts).
const BUILTIN_GROUPS = parsedBuiltinGroups();
const BUILTIN_MANIFESTS = parsedBuiltinManifests();

/** The built-in groups and handlers, by manifest; each handler's code loads on first use. */
export function manifestRegistry(opts: ManifestRegistryOptions = {}): HandlerRegistry {
  const registry = new HandlerRegistry();
  for (const group of BUILTIN_GROUPS) registry.registerGroup(group);
  for (const manifest of BUILTIN_MANIFESTS) {
    const contributes = opts.contributors !== false && (manifest.contributes?.length ?? 0) > 0;
    const wanted = !opts.groups || opts.groups.includes(manifest.group) || contributes;
    if (wanted) registry.register(deferredHandler(manifest, () => handlerFor(manifest.name)));
  }
  return registry;
}
