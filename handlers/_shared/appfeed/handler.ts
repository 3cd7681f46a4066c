/**
 * The APPFEED and USERAPPFEED handlers are one handler with two names
 * (docs/exclusions.md): the same Lua package format, encryption and
 * sandbox as Behavior (handlers/_shared/lua), the same read-only API, the
 * `appfeed` host group. USERAPPFEED adds a gate before anything runs: its
 * rules carry the tenant's signature (handlers/_shared/tenant/signature.ts).
 *
 * load() proves the package (decrypts, compiles, lists its apps) and runs
 * every detector once — "at install". A gate that says "not now" either
 * refuses the package or, where that is safe, installs it *inert*: it is
 * validated (structure, envelopes) but not decrypted, and no Lua of it is
 * compiled or run — so it needs no content key either; every run reports
 * the hold instead of results (the feed excludes nothing for it). The gate
 * is asked again before every run; the first run it allows decrypts. The supervisor's exclusion feed
 * (handlers/APPFEED/feed.ts) takes the results from here and runs them
 * again after package-manager changes and hourly.
 *
 * API (`call`): run → AppfeedRun (runs now) · results → the last run · apps → the detectors
 */
import { HandlerError } from "../../../core/errors.ts";
import {
  type Capabilities,
  type ContentView,
  defineParsedHandler,
  type HandlerManifest,
  viewOverBytes,
} from "../../../core/handler/contract.ts";
import { openRulesPackage, validateRulesPackage } from "../lua/format.ts";
import { loadKeyring } from "../lua/keys.ts";
import { type AppfeedRuleset, type AppfeedRun, listApps, type RunHold, runAppfeed } from "./engine.ts";
import { AppfeedEnv } from "./env.ts";

export { APPFEED_READ_PATHS } from "./manifest.ts";

/** May the rules run now? `refuse` (at load only) rejects the package instead of holding it inert. */
export type GateVerdict = { run: true; signer?: string } | { run: false; hold: RunHold; refuse: boolean };
/** Asked at load and before every run, with the group's work directory (where trust roots live). */
export type RunGate = (caps: Capabilities) => Promise<GateVerdict>;

type AppList = { id: string; description: string; file: string }[];

interface AppfeedLive {
  version: number;
  /** The decrypted rules; absent while the package is held (it is not decrypted until it may run). */
  ruleset?: AppfeedRuleset;
  /** A held package's files, kept in memory (the view is only good during load) until it may run. */
  sealed?: ContentView;
  caps: Capabilities;
  gate?: RunGate;
  /** Listed when the rules first may run (never for content held inert). */
  apps?: AppList;
  last: AppfeedRun;
}

export interface AppfeedHandlerOptions {
  type: "APPFEED" | "USERAPPFEED";
  /** The type's built-in manifest, parsed (handlers/builtins.macro.ts). */
  manifest: HandlerManifest;
  /** Extra checks before the rules are opened (USERAPPFEED: the tenant manifest). Pure: no key material needed. */
  validate?: (view: ContentView) => void;
  /** The run gate for this package (USERAPPFEED: the tenant signature against the tenant root). */
  gate?: (view: ContentView) => RunGate;
}

function summary(run: AppfeedRun) {
  const count = (o: string) => run.apps.filter((a) => a.outcome === o).length;
  return {
    ...(run.held ? { held: run.held } : {}),
    apps: run.apps.length,
    detected: count("detected"),
    failed: count("failed"),
    refused: count("refused"),
    exclusions: run.apps.reduce((n, a) => n + a.exclusions.length, 0),
    lastRun: run.ranAt,
  };
}

export function defineAppfeedHandler(o: AppfeedHandlerOptions) {
  const open = (view: ContentView, caps: Capabilities): AppfeedRuleset => {
    const { manifest, rules } = openRulesPackage(view, loadKeyring(caps.workDir));
    return { type: o.type, version: view.version, rules, limits: manifest.limits };
  };
  const run = async (live: AppfeedLive, verdict?: GateVerdict) => {
    const v = verdict ?? (live.gate ? await live.gate(live.caps) : { run: true as const });
    if (v.run) {
      const env = new AppfeedEnv({ fs: live.caps.fs! });
      // First run a held package may make: decrypt it now (a missing key fails this run, it stays held).
      if (!live.ruleset) {
        live.ruleset = open(live.sealed!, live.caps);
        live.sealed = undefined;
      }
      const ruleset = live.ruleset;
      live.apps ??= await listApps(ruleset, env);
      live.last = await runAppfeed(ruleset, env);
    } else {
      live.last = {
        type: o.type,
        version: live.version,
        ranAt: new Date().toISOString(),
        apps: [],
        held: v.hold,
      };
    }
    live.caps.events.emit("appfeed-ran", {
      contentType: o.type,
      version: live.version,
      ...summary(live.last),
      ...(live.last.held ? { held: live.last.held.code } : {}),
    });
    return live.last;
  };
  return defineParsedHandler<AppfeedLive>({
    manifest: o.manifest,

    validate(view) {
      validateRulesPackage(view);
      o.validate?.(view);
    },

    async load(view, caps) {
      if (!caps.fs) throw new HandlerError("HND_APPFEED_LOAD_FAILED", `${o.type}: no file system capability`);
      const gate = o.gate?.(view);
      const verdict: GateVerdict = gate ? await gate(caps) : { run: true };
      if (!verdict.run && verdict.refuse) {
        throw new HandlerError(verdict.hold.code, verdict.hold.message, { file: view.type });
      }
      const live: AppfeedLive = {
        version: view.version,
        // Rules that may not run are not even decrypted: nothing of them is touched until they may.
        ...(verdict.run ? { ruleset: open(view, caps) } : { sealed: inMemory(view) }),
        caps,
        ...(gate ? { gate } : {}),
        last: { type: o.type, version: view.version, ranAt: "", apps: [] },
      };
      await run(live, verdict);
      if (verdict.run) {
        caps.log.info(`${o.type} rules loaded and run`, { version: view.version, ...summary(live.last) });
      } else {
        caps.log.warn(`${o.type} rules installed inert`, { version: view.version, ...verdict.hold });
      }
      return live;
    },

    status: (live) => summary(live.last),

    async call(live, method) {
      if (method === "run") return run(live);
      if (method === "results") return live.last;
      if (method === "apps") {
        return {
          version: live.version,
          apps: live.apps ?? [],
          ...(live.last.held ? { held: live.last.held } : {}),
        };
      }
      throw new HandlerError("HND_NO_METHOD", `${o.type} has no method ${method} (try: run, results, apps)`);
    },
  });
}

/** A copy of a package's files that outlives load (a held package is opened later, if ever). */
function inMemory(view: ContentView): ContentView {
  const files = new Map(view.files.map((f) => [f, view.read(f)]));
  const read = (f: string) => {
    const data = files.get(f);
    if (!data)
      throw new HandlerError("HND_APPFEED_LOAD_FAILED", `${f}: not in ${view.type} v${view.version}`);
    return data;
  };
  return viewOverBytes({
    type: view.type,
    version: view.version,
    signingTime: view.signingTime,
    files: view.files,
    read,
    readText: (f) => new TextDecoder().decode(read(f)),
  });
}
