/**
 * The supervisor side of APPFEED and USERAPPFEED (`agent run`): takes each
 * run's results from the appfeed host and makes them the agent's
 * exclusions (core/exclusions), replacing the type's previous set in one
 * step. Rules run (docs/exclusions.md, "When rules run"):
 *
 *   - at install: the handler runs them in load(); this feed picks the results up on
 *     `content-installed` (and on start, for content installed before);
 *   - on demand: `agent appfeed run` (each run the handler announces with `appfeed-ran` is
 *     picked up the same way, whoever asked for it);
 *   - after each package-manager change: /var/lib/dpkg and /var/lib/rpm are watched, and a
 *     burst of changes (an apt transaction) gives one run once it has been quiet for `settleMs`;
 *   - hourly.
 *
 * An app whose detector failed keeps the exclusions it had; one that was
 * refused (a write, a tool outside the allow-list, a path it may not read,
 * or an exclusion the core refuses: `/`, the agent's own files) has nothing
 * excluded. Both stay on the health board (AMBER) and the event stream
 * until a run succeeds.
 *
 * A run that was *held* (USERAPPFEED without a verified tenant signature,
 * handlers/_shared/tenant/signature.ts) ran nothing: the type's exclusions
 * are emptied, the hold is recorded with the exclusion set (`agent
 * exclusions` shows it) and raised on the health board at the level the
 * handler gives it — info when nothing asked for the rules to run (no tenant
 * root, no tenant signature: an agent with the vendor's example stays
 * green), amber when something did.
 */
import { existsSync, type FSWatcher, watch } from "node:fs";
import type { AgentService, ServiceContext } from "../../core/cli/agent/session.ts";
import { describeError } from "../../core/errors.ts";
import type { SourceUpdate } from "../../core/exclusions/service.ts";
import { log } from "../../core/log.ts";
import type { AppfeedRun } from "../_shared/appfeed/engine.ts";

export const APPFEED_TYPES = ["APPFEED", "USERAPPFEED"] as const;
export const HEALTH_SOURCE = "appfeed";
/** The hold codes a run may carry (handlers/_shared/tenant/signature.ts); cleared when a run is not held. */
const HOLD_CODES = ["HND_TENANT_UNSIGNED", "HND_TENANT_NOT_TRUSTED", "HND_TENANT_SIGNATURE"];
const logger = log.child({ component: "appfeed" });

export interface AppfeedFeedOptions {
  intervalMs?: number;
  settleMs?: number;
  /** Package databases to watch (tests: a temp dir). */
  watchDirs?: readonly string[];
}

type Api = Pick<ServiceContext["api"], "call" | "exclusions" | "health" | "events">;

export class AppfeedFeed implements AgentService {
  readonly name = "appfeed";
  private timer?: ReturnType<typeof setInterval>;
  private settle?: ReturnType<typeof setTimeout>;
  private watchers: FSWatcher[] = [];
  private unsubscribe?: () => void;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly applied = new Map<string, string>();
  /** Package-manager changes seen (for status and tests). */
  packageChanges = 0;

  constructor(
    private readonly api: Api,
    private readonly o: AppfeedFeedOptions = {},
  ) {}

  async start(): Promise<void> {
    this.unsubscribe = this.api.events.subscribe((e) => {
      const type = e.contentType;
      if (/^(content-installed|content-rolled-back|appfeed-ran)$/.test(e.type) && isAppfeed(type)) {
        void this.enqueue(type);
      }
    });
    for (const dir of this.o.watchDirs ?? ["/var/lib/dpkg", "/var/lib/rpm"]) {
      if (!existsSync(dir)) continue;
      try {
        this.watchers.push(watch(dir, () => this.packagesChanged()));
      } catch (e) {
        logger.warn("cannot watch the package database", { dir, ...describeError(e) });
      }
    }
    this.timer = setInterval(() => this.runAll(), this.o.intervalMs ?? 3600_000);
    this.timer.unref?.();
    await this.applyAll();
  }

  stop(): void {
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
    if (this.settle) clearTimeout(this.settle);
    for (const w of this.watchers.splice(0)) w.close();
  }

  /** Asks every loaded type to run its rules now; each run's `appfeed-ran` brings its results here. */
  runAll(): Promise<unknown> {
    return Promise.all(
      APPFEED_TYPES.map((t) =>
        this.api.call(t, "run", {}).catch((e) => {
          const d = describeError(e);
          if (d.code !== "HND_NOT_LOADED") logger.warn(`${t} rules not run`, d);
        }),
      ),
    );
  }

  /** Applies every loaded type's last results; resolves when done. */
  applyAll(): Promise<unknown> {
    return Promise.all(APPFEED_TYPES.map((t) => this.enqueue(t)));
  }

  private packagesChanged(): void {
    this.packageChanges++;
    if (this.settle) clearTimeout(this.settle);
    this.settle = setTimeout(() => {
      this.settle = undefined;
      void this.runAll();
    }, this.o.settleMs ?? 2000);
    this.settle.unref?.();
  }

  /** One at a time: a run and an install landing together must not apply out of order. */
  private enqueue(type: string): Promise<unknown> {
    this.chain = this.chain.then(() => this.apply(type)).catch(() => {});
    return this.chain;
  }

  private async apply(type: string): Promise<void> {
    let run: AppfeedRun;
    try {
      run = (await this.api.call(type, "results", {})) as AppfeedRun;
    } catch (e) {
      // Not installed (or its host is down): its exclusions stay as they were.
      const d = describeError(e);
      if (d.code !== "HND_NOT_LOADED") logger.warn(`${type} results not applied`, d);
      return;
    }
    // The same run announced twice (its event, then an install) is applied once.
    const key = `${run.version}@${run.ranAt}`;
    if (this.applied.get(type) === key) return;
    this.applied.set(type, key);
    this.applyHold(type, run);
    const next: Record<string, SourceUpdate> = {};
    const problems: string[] = [];
    for (const app of run.apps) {
      const source = `${type}:${app.id}`;
      if (app.outcome === "failed") {
        next[source] = { keep: true, error: app.error ?? "failed" };
        problems.push(`${app.file} (${app.id}) failed, keeps its previous exclusions: ${app.error}`);
        this.api.events.emit("appfeed-rule-failed", {
          contentType: type,
          app: app.id,
          file: app.file,
          error: app.error,
        });
      } else {
        next[source] = { exclusions: app.exclusions };
        if (app.outcome === "refused") {
          problems.push(`${app.file} (${app.id}) refused: ${app.error}`);
          this.api.events.emit("appfeed-rule-refused", {
            contentType: type,
            app: app.id,
            file: app.file,
            reason: app.error,
          });
        }
      }
    }
    const { refused } = this.api.exclusions.replace(
      type,
      next,
      run.held ? { held: { code: run.held.code, message: run.held.message } } : {},
    );
    for (const r of refused) {
      const app = run.apps.find((a) => `${type}:${a.id}` === r.source);
      problems.push(`${app?.file ?? r.source} (${app?.id ?? r.source}) refused: ${r.rule}: ${r.reason}`);
      this.api.events.emit("appfeed-rule-refused", {
        contentType: type,
        app: app?.id,
        file: app?.file,
        reason: `${r.rule}: ${r.reason}`,
      });
    }
    const code = type === "APPFEED" ? "HND_APPFEED_RULES_FAILED" : "HND_USERAPPFEED_RULES_FAILED";
    if (problems.length > 0) {
      this.api.health.raise(HEALTH_SOURCE, "amber", code, `${type} v${run.version}: ${problems.join("; ")}`);
    } else this.api.health.clear(HEALTH_SOURCE, code);
    const s = this.api.exclusions.summary();
    this.api.events.emit("exclusions-changed", {
      contentType: type,
      version: run.version,
      count: s.count,
      hash: s.hash,
    });
    logger.info(`${type} exclusions applied`, {
      version: run.version,
      count: s.count,
      problems: problems.length,
    });
  }

  /** The health board carries a held run's reason (at its level) until a run is not held. */
  private applyHold(type: string, run: AppfeedRun): void {
    for (const code of HOLD_CODES) {
      if (code !== run.held?.code) this.api.health.clear(`${HEALTH_SOURCE}:${type}`, code);
    }
    if (!run.held) return;
    this.api.health.raise(`${HEALTH_SOURCE}:${type}`, run.held.level, run.held.code, run.held.message);
    this.api.events.emit("appfeed-held", {
      contentType: type,
      version: run.version,
      code: run.held.code,
      level: run.held.level,
      message: run.held.message,
    });
  }
}

function isAppfeed(t: unknown): t is string {
  return typeof t === "string" && (APPFEED_TYPES as readonly string[]).includes(t);
}

/** How `agent run` starts the feed beside the agent (bin/agent-main.ts). */
export function appfeedFeed(ctx: ServiceContext): AppfeedFeed {
  return new AppfeedFeed(ctx.api);
}
