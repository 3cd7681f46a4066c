/**
 * Start-up: every installed content type is loaded into its host again —
 * after its stored files are verified once more, since a disk can rot or be
 * tampered with between runs. A type that fails to load is marked bad and
 * its last-known-good restored (automatic rollback, alert, AMBER notice);
 * with no last-known-good it is shown failed. A read-only view only marks
 * failures: it never rolls back or writes (runtime.ts, startReadOnly).
 */
import { describeError, StoreError } from "../errors.ts";
import type { ContentView } from "../handler/contract.ts";
import type { HandlerHost } from "../handler/host-contract.ts";
import type { Logger } from "../log.ts";
import { metrics } from "../metrics.ts";
import type { ContentStore } from "../store/store.ts";
import type { Alert } from "./alerts.ts";
import type { RejectionRecord } from "./api.ts";
import type { RollbackNotices } from "./rollback-notices.ts";

export const rollbacksTotal = metrics.counter(
  "outpost_content_rollbacks_total",
  "Content rollbacks to last-known-good, by type and trigger (automatic, manual)",
);

type InstalledRecord = NonNullable<ReturnType<ContentStore["installed"]>>;

export interface StartupLoadDeps {
  store: ContentStore;
  host: HandlerHost;
  log: Logger;
  readOnly: boolean;
  now: () => Date;
  rollbackNotices: RollbackNotices;
  emit(type: string, fields?: Record<string, unknown>): void;
  recordError(r: RejectionRecord): void;
  alert(a: Omit<Alert, "at" | "host" | "agentVersion" | "group">): void;
}

export async function loadInstalledContent(types: readonly string[], d: StartupLoadDeps): Promise<void> {
  const records = types.map((type): [string, InstalledRecord | null | { unreadable: unknown }] => {
    try {
      return [type, d.store.installed(type)];
    } catch (e) {
      return [type, { unreadable: e }];
    }
  });
  // Every host that gets content starts now, side by side: each boots while the content before it
  // loads and while its own is read and checked, not one after another (types load in order).
  d.host.prestart?.(records.filter(([, r]) => r && !("unreadable" in r)).map(([type]) => type));
  for (const [type, record] of records) {
    if (record && "unreadable" in record) {
      if (d.readOnly) d.host.markFailed(type, record.unreadable);
      else await recoverFromLkg(d, type, undefined, record.unreadable);
      continue;
    }
    if (!record) continue;
    try {
      await loadRecord(d, type, record);
    } catch (e) {
      if (d.readOnly) d.host.markFailed(type, e);
      else await recoverFromLkg(d, type, record.version, e);
    }
  }
}

/** Verifies the stored files again, then validates, prepares and commits them in the host. */
export async function loadRecord(
  d: Pick<StartupLoadDeps, "store" | "host">,
  type: string,
  record: InstalledRecord,
): Promise<void> {
  // Content on disk may have rotted since it was verified (disk errors, tampering): re-check before
  // loading. The layout here (every listed file present, regular, of its size, nothing extra); the
  // bytes as they are read for the host, where the view checks each file's SHA-384 — so each file is
  // read and hashed once, and what was hashed is what the handler gets.
  const corrupt = (path: string | undefined, reason: string) =>
    new StoreError("STORE_CONTENT_CORRUPT", `${type} v${record.version}: ${path ?? "?"}: ${reason}`, {
      file: path,
    });
  const check = d.store.verifyInstalled(type, record, { layoutOnly: true });
  if (check && !check.ok) {
    const first = check.problems[0];
    throw corrupt(first?.path, first?.reason ?? "does not match its manifest");
  }
  const stored = d.store.view(record);
  const unread = new Set(stored.files);
  // Both reads check the whole file (head streams it), so either one counts as read.
  const checked = <T>(path: string, readIt: () => T): T => {
    try {
      const data = readIt();
      unread.delete(path);
      return data;
    } catch (e) {
      if (e instanceof StoreError && (e.code === "STORE_FILE_MISMATCH" || e.code === "STORE_FILE_MISSING"))
        throw corrupt(path, e.message);
      throw e;
    }
  };
  const view: ContentView = {
    ...stored,
    read: (path) => checked(path, () => stored.read(path)),
    readText: (path) => new TextDecoder("utf-8", { fatal: true }).decode(view.read(path)),
    head: (path, bytes) => checked(path, () => stored.head(path, bytes)),
  };
  await d.host.validate(type, view);
  // A host process is sent every file (a headOnly one as its head, the whole file checked); a handler
  // in-process may read only some. Either way, every file is checked before the version is activated
  // — streamed, so a file nobody read whole is not made whole now.
  for (const path of unread) view.head(path, 0);
  const prepared = await d.host.prepare(type, view);
  const installedAt = Date.parse(record.installedAt);
  await d.host.commit(prepared, Number.isNaN(installedAt) ? {} : { activatedAt: installedAt });
}

/** The last-known-good record, or undefined when there is none or its pointer is unreadable. */
export function safeLkg(store: ContentStore, type: string): InstalledRecord | undefined {
  try {
    return store.lkg(type) ?? undefined;
  } catch {
    return undefined;
  }
}

async function recoverFromLkg(
  d: StartupLoadDeps,
  type: string,
  failedVersion: number | undefined,
  cause: unknown,
): Promise<void> {
  const e = describeError(cause);
  d.log.error("content failed to load; rolling back to last-known-good", { type, failedVersion, ...e });
  if (failedVersion !== undefined) d.store.markBad(type, failedVersion, `${e.code}: ${e.message}`);
  const failed = (err: unknown) => {
    d.host.markFailed(type, err);
    const f = describeError(err);
    d.recordError({ at: d.now().toISOString(), type, file: f.file ?? type, code: f.code, reason: f.message });
    return f;
  };
  const lkg = safeLkg(d.store, type);
  if (!lkg) {
    failed(cause);
    d.alert({ kind: "handler-failed", type, code: e.code, reason: e.message, file: e.file });
    return;
  }
  try {
    await loadRecord(d, type, lkg);
    d.store.rollback(type);
    rollbacksTotal.inc({ type, trigger: "automatic" });
    d.rollbackNotices.record(type, failedVersion ?? null, lkg.version, `${e.code}: ${e.message}`);
    d.emit("content-rolled-back", {
      contentType: type,
      from: failedVersion ?? null,
      to: lkg.version,
      automatic: true,
    });
    d.alert({
      kind: "content-rolled-back",
      type,
      code: e.code,
      reason: `v${failedVersion} failed to load (${e.message}); restored v${lkg.version}`,
    });
  } catch (e2) {
    failed(e2);
  }
}
