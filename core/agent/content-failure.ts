/**
 * S3/S4 of core/host/manager.ts, the agent's half: the current content of a
 * type made its host crash-loop, or no longer loads. The version is marked
 * bad (never installed again), the type rolls back to a verified
 * last-known-good, an alert and events say so, and the host is told what to
 * load instead (null: nothing usable).
 */
import type { ContentView } from "../handler/contract.ts";
import type { ContentFailure } from "../host/manager.ts";
import type { Logger } from "../log.ts";
import type { ContentStore } from "../store/store.ts";
import type { Alert } from "./alerts.ts";
import type { RejectionRecord } from "./api.ts";
import type { EventBus } from "./events.ts";
import type { RollbackNotices } from "./rollback-notices.ts";
import { rollbacksTotal, safeLkg } from "./startup-load.ts";

export interface ContentFailureDeps {
  store: ContentStore;
  now: () => Date;
  log: Logger;
  events: EventBus;
  rollbackNotices: RollbackNotices;
  recordError: (r: RejectionRecord) => void;
  alert: (a: Omit<Alert, "at" | "host" | "agentVersion" | "group">) => void;
}

export async function rollBackFailedContent(
  f: ContentFailure,
  d: ContentFailureDeps,
): Promise<ContentView | null> {
  let current: ReturnType<ContentStore["installed"]> = null;
  try {
    current = d.store.installed(f.type);
  } catch {
    current = null;
  }
  if (current && current.version !== f.version) {
    // An update or an administrator already moved on; serve what the store says is current.
    return d.store.view(current);
  }
  const failure = f.reason === "crash-loop" ? "made its host crash-loop" : "no longer loads";
  d.store.markBad(f.type, f.version, `${f.code}: ${f.detail}`);
  d.recordError({
    at: d.now().toISOString(),
    type: f.type,
    file: f.type,
    code: f.code,
    reason: f.detail,
  });
  const lkg = safeLkg(d.store, f.type);
  const usable =
    lkg &&
    lkg.version !== f.version &&
    !d.store.isBad(f.type, lkg.version) &&
    d.store.verifyInstalled(f.type, lkg)?.ok !== false;
  if (!lkg || !usable) {
    d.alert({
      kind: "handler-failed",
      type: f.type,
      code: f.code,
      reason: `v${f.version} ${failure} and there is no usable last-known-good: ${f.detail}`,
    });
    d.events.emit("handler-failed", {
      contentType: f.type,
      version: f.version,
      code: f.code,
      reason: f.detail,
    });
    return null;
  }
  d.store.rollback(f.type);
  rollbacksTotal.inc({ type: f.type, trigger: "automatic" });
  d.rollbackNotices.record(f.type, f.version, lkg.version, `${f.code}: ${failure} (${f.detail})`);
  d.log.error("content rolled back automatically", { ...f, from: f.version, to: lkg.version });
  d.events.emit("content-rolled-back", {
    contentType: f.type,
    from: f.version,
    to: lkg.version,
    automatic: true,
    trigger: f.reason,
    group: f.group,
  });
  d.alert({
    kind: "content-rolled-back",
    type: f.type,
    code: f.code,
    reason: `v${f.version} ${failure} (${f.detail}); restored v${lkg.version}`,
  });
  return d.store.view(lkg);
}
