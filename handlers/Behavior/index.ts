/**
 * Behavior: signed and encrypted Lua rules that react to events (process
 * starts, network connections, file writes, config changes…) and raise
 * detections. Rules run in the sandboxed interpreter (handlers/_shared/lua) with
 * per-call instruction, memory and output limits; a rule that keeps
 * faulting is disabled while the others keep running.
 *
 * API (`call`): inject {events} → detections; feed {events, provides} → the sensor bus's
 * delivery (detections + the types the rules subscribe to); stats → per-rule telemetry;
 * detections → the most recent ones.
 */
import { HandlerError } from "../../core/errors.ts";
import { defineParsedHandler } from "../../core/handler/contract.ts";
import { openRulesPackage, validateRulesPackage } from "../_shared/lua/format.ts";
import { loadKeyring } from "../_shared/lua/keys.ts";
import { parseEvents } from "./events.ts";
import { BehaviorLive, BehaviorSettingsSchema } from "./live.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };

function settingsOf(raw: Record<string, unknown>) {
  const r = BehaviorSettingsSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new HandlerError(
      "HND_RULES_MANIFEST_INVALID",
      `rules.json: settings.${issue?.path.join(".")}: ${issue?.message ?? "invalid"}`,
      { file: "rules.json" },
    );
  }
  return r.data;
}

export const behaviorHandler = defineParsedHandler<BehaviorLive>({
  manifest: parsedManifest(),

  validate(view) {
    settingsOf(validateRulesPackage(view).settings);
  },

  async load(view, caps) {
    const { manifest, rules } = openRulesPackage(view, loadKeyring(caps.workDir));
    const live = new BehaviorLive(caps, view.version, rules, manifest.limits, settingsOf(manifest.settings));
    try {
      await live.start();
    } catch (e) {
      await live.stop();
      throw e;
    }
    return live;
  },

  unload: (live) => live.stop(),

  status: (live) => live.status(),

  call(live, method, args) {
    switch (method) {
      case "inject": {
        const raw = (args as { events?: unknown })?.events ?? args;
        const list = Array.isArray(raw) ? raw : [raw];
        return live.process(parseEvents(list, Date.now(), (i) => `event ${i + 1}`));
      }
      case "feed": {
        const a = (args ?? {}) as { events?: unknown; provides?: unknown };
        const list = Array.isArray(a.events) ? a.events : [];
        const provides = Array.isArray(a.provides) ? a.provides.filter((t) => typeof t === "string") : [];
        return live.feed(
          parseEvents(list, Date.now(), (i) => `sensor event ${i + 1}`),
          provides as string[],
        );
      }
      case "stats": {
        const s = live.stats();
        live.publishStats();
        return s ?? { version: live.version, waitingFor: "ProductRulesFeed" };
      }
      case "detections":
        return { detections: live.recent };
      case "status":
        return live.status();
      default:
        throw new HandlerError(
          "HND_NO_METHOD",
          `Behavior has no method ${method} (try: inject, feed, stats, detections, status)`,
        );
    }
  },
});
