/**
 * The APPFEED and USERAPPFEED handlers are one handler with two names
 * (docs/exclusions.md): the same Lua package format, encryption and
 * sandbox as Behavior (handlers/_shared/lua), the same read-only API, the
 * `appfeed` host group. USERAPPFEED adds one check before anything runs:
 * its rules carry the tenant's signature (tenant.ts).
 *
 * load() proves the package (decrypts, compiles, lists its apps) and runs
 * every detector once — "at install". The supervisor's exclusion feed
 * (handlers/APPFEED/feed.ts) takes the results from here and runs them
 * again after package-manager changes and hourly.
 *
 * API (`call`): run → AppfeedRun (runs now) · results → the last run · apps → the detectors
 */
import { HandlerError } from "../../../core/errors.ts";
import { type Capabilities, type ContentView, defineHandler } from "../../../core/handler/contract.ts";
import { openRulesPackage, validateRulesPackage } from "../lua/format.ts";
import { loadKeyring } from "../lua/keys.ts";
import { type AppfeedRuleset, type AppfeedRun, listApps, runAppfeed } from "./engine.ts";
import { AppfeedEnv } from "./env.ts";

/** What a rule may read: package databases, application metadata, config, snap/flatpak state. */
export const APPFEED_READ_PATHS = [
  "/var/lib/dpkg/**",
  "/var/lib/rpm/**",
  "/usr/share/applications/**",
  "/opt/**",
  "/etc/**",
  "/var/lib/snapd/**",
  "/var/lib/flatpak/**",
  "/snap/**",
];

interface AppfeedLive {
  ruleset: AppfeedRuleset;
  caps: Capabilities;
  apps: { id: string; description: string; file: string }[];
  last: AppfeedRun;
}

export interface AppfeedHandlerOptions {
  type: "APPFEED" | "USERAPPFEED";
  description: string;
  /** Extra checks before the rules are opened (USERAPPFEED: the tenant signature). Pure: no key material needed. */
  validate?: (view: ContentView) => void;
  /** Checks at load, with the group's work directory (USERAPPFEED: the tenant trust root). */
  verify?: (view: ContentView, caps: Capabilities) => Promise<void>;
}

function summary(run: AppfeedRun) {
  const count = (o: string) => run.apps.filter((a) => a.outcome === o).length;
  return {
    apps: run.apps.length,
    detected: count("detected"),
    failed: count("failed"),
    refused: count("refused"),
    exclusions: run.apps.reduce((n, a) => n + a.exclusions.length, 0),
    lastRun: run.ranAt,
  };
}

export function defineAppfeedHandler(o: AppfeedHandlerOptions) {
  const run = async (live: AppfeedLive) => {
    live.last = await runAppfeed(live.ruleset, new AppfeedEnv({ fs: live.caps.fs! }));
    live.caps.events.emit("appfeed-ran", {
      contentType: o.type,
      version: live.ruleset.version,
      ...summary(live.last),
    });
    return live.last;
  };
  return defineHandler<AppfeedLive>({
    manifest: {
      name: o.type,
      description: o.description,
      group: "appfeed",
      // Unprivileged and read-only: the package databases and application paths, plus the
      // read-only query tools of env.ts (exec). No network.
      privileges: {
        runAs: "agent",
        fs: { mode: "read-only", paths: APPFEED_READ_PATHS },
        net: "none",
        exec: true,
      },
      limits: { memoryMb: 256, cpuSeconds: 86400 },
      maxPackageBytes: 8 * 1024 * 1024,
    },

    validate(view) {
      validateRulesPackage(view);
      o.validate?.(view);
    },

    async load(view, caps) {
      if (!caps.fs) throw new HandlerError("HND_APPFEED_LOAD_FAILED", `${o.type}: no file system capability`);
      await o.verify?.(view, caps);
      const { manifest, rules } = openRulesPackage(view, loadKeyring(caps.workDir));
      const ruleset: AppfeedRuleset = { type: o.type, version: view.version, rules, limits: manifest.limits };
      const env = new AppfeedEnv({ fs: caps.fs });
      const apps = await listApps(ruleset, env);
      const live: AppfeedLive = {
        ruleset,
        caps,
        apps,
        last: { type: o.type, version: view.version, ranAt: "", apps: [] },
      };
      await run(live);
      caps.log.info(`${o.type} rules loaded and run`, { version: view.version, ...summary(live.last) });
      return live;
    },

    status: (live) => summary(live.last),

    async call(live, method) {
      if (method === "run") return run(live);
      if (method === "results") return live.last;
      if (method === "apps") return { version: live.ruleset.version, apps: live.apps };
      throw new HandlerError("HND_NO_METHOD", `${o.type} has no method ${method} (try: run, results, apps)`);
    },
  });
}
