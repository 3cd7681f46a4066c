/**
 * One AutoUpdate cycle: fetch the group's index, verify it, and for each
 * content type it offers download, verify, stage, validate, load and only
 * then switch. Every rejection is reported with file, code and reason and
 * never disturbs content that is already live. The checks themselves live
 * in trusted-state.ts; this file only sequences I/O around them.
 */
import type { RejectionRecord, UpdateCycleReport } from "../agent/api.ts";
import { byCodeUnit } from "../compare.ts";
import { sha384Hex } from "../crypto/digest.ts";
import type { Trust } from "../crypto/verify.ts";
import { describeError, isOutpostError, UpdateError } from "../errors.ts";
import type { HandlerRegistry } from "../handler/registry.ts";
import type { InProcessHost } from "../host/in-process.ts";
import type { Logger } from "../log.ts";
import { INDEX_PATH, INDEX_SIG_PATH, parseIndex, type RepoIndex } from "../repo/index-format.ts";
import type { ContentStore } from "../store/store.ts";
import type { UpdateMemory } from "./memory.ts";
import type { Spool } from "./spool.ts";
import type { Transport } from "./transport.ts";
import {
  type ContentPolicy,
  checkIndexFresh,
  decide,
  type InstalledFacts,
  laterTime,
  policyGroup,
  selectEntry,
  verifyIndex,
  verifyPackage,
} from "./trusted-state.ts";

/**
 * Failures of the machinery rather than of the content: they must not brand a version bad. A handler
 * whose own signature check could not run (USERAPPFEED's tenant check, in the crypto worker) has said
 * nothing about the content either (not-the-contents-fault.test.ts).
 */
const NOT_THE_CONTENTS_FAULT = new Set([
  "HND_HOST_UNAVAILABLE",
  "HND_HOST_DOWN",
  "HND_HOST_SPAWN_FAILED",
  "SIG_VERIFIER_FAILED",
]);

export interface UpdateClientDeps {
  transport: Transport;
  trust: Trust;
  /** Narrowed to what a cycle uses, so fleet simulations can pass lightweight stand-ins. */
  store: Pick<ContentStore, "installed" | "isBad" | "markBad" | "stage" | "view" | "activate"> &
    Partial<Pick<ContentStore, "lkg">>;
  host: Pick<InProcessHost, "validate" | "prepare" | "commit" | "discard">;
  registry: HandlerRegistry;
  memory: Pick<UpdateMemory, "data" | "save" | "cachedIndex" | "cacheIndex">;
  /** Administrator policy (config `policy`): cadence and pins; absent means general, unpinned. */
  policy?: ContentPolicy;
  log: Logger;
  now: () => Date;
  limits: { indexMaxBytes: number; timeoutMs: number; minBytesPerSecond: number };
  /** Where package bodies are written as they download (spool.ts); absent: held in memory. */
  spool?: Spool;
  onRejection?: (r: RejectionRecord) => void;
  onInstalled?: (e: { type: string; version: number; previousVersion: number | null }) => void;
  /**
   * Only these types this cycle, on-demand ones included (`agent install
   * --remove-incompatible` fetches CRT alone). Absent: every scheduled type.
   */
  only?: readonly string[];
}

export async function runUpdateCycle(
  deps: UpdateClientDeps,
  assignedGroup: string,
): Promise<UpdateCycleReport> {
  const group = policyGroup(assignedGroup, deps.policy);
  const startedAt = deps.now().toISOString();
  const report: UpdateCycleReport = {
    startedAt,
    finishedAt: startedAt,
    group,
    repo: deps.transport.describe,
    index: "failed",
    serial: null,
    installed: [],
    unchanged: [],
    rejected: [],
    ok: false,
  };
  const reject = (file: string, e: unknown, type?: string) => {
    const d = describeError(e);
    const rec: RejectionRecord = {
      at: deps.now().toISOString(),
      type,
      file: d.file ?? file,
      code: d.code,
      reason: d.message,
    };
    report.rejected.push(rec);
    deps.log.warn("update rejected", { ...rec });
    deps.onRejection?.(rec);
  };

  let index: RepoIndex;
  try {
    const fetched = await fetchIndex(deps, group);
    index = fetched.index;
    report.index = fetched.notModified ? "not-modified" : "updated";
    report.serial = index.serial;
  } catch (e) {
    reject(INDEX_PATH(group), e);
    const retryAfter = isOutpostError(e) ? e.details?.retryAfterSeconds : undefined;
    if (typeof retryAfter === "number") report.retryAfterSeconds = retryAfter;
    return finish(deps, report);
  }

  for (const [type, offered] of Object.entries(index.content).sort(([a], [b]) => byCodeUnit(a, b))) {
    let entry = offered;
    let file = entry.path;
    const handler = deps.registry.get(type);
    if (!handler) {
      // Newer repositories may carry types this agent version cannot handle; that is not an attack.
      deps.log.info("index offers a content type with no handler here; ignored", { type });
      continue;
    }
    if (deps.only ? !deps.only.includes(type) : handler.manifest.install === "on-demand") continue;
    let current: ReturnType<ContentStore["installed"]>;
    let facts: InstalledFacts | undefined;
    let decision: ReturnType<typeof decide>;
    try {
      // A corrupt pointer or bad-list is this type's problem: report it and go on with the others.
      current = deps.store.installed(type);
      facts = current ? installedFacts(deps, type, current) : undefined;
      const selected = selectEntry(type, offered, facts, deps.policy);
      if ("hold" in selected) {
        report.unchanged.push(type);
        if (selected.hold !== "up-to-date")
          deps.log.info("held by policy", { type, detail: selected.detail });
        continue;
      }
      entry = selected.entry;
      file = entry.path;
      decision = decide(type, entry, facts, {
        isBad: deps.store.isBad(type, entry.version),
        maxPackageBytes: handler.manifest.maxPackageBytes,
        file,
      });
    } catch (e) {
      reject(file, e, type);
      continue;
    }
    if (decision.action === "skip") {
      report.unchanged.push(type);
      if (decision.why === "marked-bad")
        deps.log.info("version marked bad; not reinstalling", { type, version: entry.version });
      continue;
    }
    if (decision.action === "reject") {
      reject(file, decision.error, type);
      continue;
    }
    try {
      await installOne(deps, type, entry, facts);
      report.installed.push({ type, version: entry.version, previousVersion: current?.version ?? null });
      deps.onInstalled?.({ type, version: entry.version, previousVersion: current?.version ?? null });
    } catch (e) {
      reject(file, e, type);
    }
  }
  report.ok = report.rejected.length === 0;
  return finish(deps, report);
}

/** What R10–R12 compare an offer with: the live version, and the newest signing time ever installed. */
function installedFacts(
  deps: UpdateClientDeps,
  type: string,
  current: NonNullable<ReturnType<ContentStore["installed"]>>,
): InstalledFacts {
  let lkgSigned: string | undefined;
  try {
    // Installs made before the high-water mark existed: the last-known-good may be the newer one.
    lkgSigned = deps.store.lkg?.(type)?.signingTime;
  } catch {
    lkgSigned = undefined;
  }
  const remembered = deps.memory.data.signingHighWater?.[type];
  return {
    version: current.version,
    signingTime: current.signingTime,
    sha384: current.sha384,
    newestSigningTime: laterTime(laterTime(current.signingTime, lkgSigned), remembered),
  };
}

/** R11's memory moves forward only. */
function rememberSigningTime(deps: UpdateClientDeps, type: string, signingTime: string): void {
  const m = deps.memory.data;
  const marks = m.signingHighWater ?? {};
  marks[type] = laterTime(marks[type], signingTime)!;
  m.signingHighWater = marks;
}

function finish(deps: UpdateClientDeps, report: UpdateCycleReport): UpdateCycleReport {
  report.finishedAt = deps.now().toISOString();
  report.ok = report.rejected.length === 0 && report.index !== "failed";
  const m = deps.memory.data;
  m.lastAttempt = report.finishedAt;
  if (report.ok) {
    m.lastSuccess = report.finishedAt;
    m.consecutiveFailures = 0;
  } else {
    m.consecutiveFailures += 1;
  }
  try {
    deps.memory.save();
  } catch (e) {
    // The cycle still ends in a report: what could not be saved is one more rejection, and the
    // in-memory state (serials, rejections) stays for status until a later save succeeds.
    const d = describeError(e);
    const rec: RejectionRecord = {
      at: report.finishedAt,
      file: d.file ?? "update-state.json",
      code: d.code,
      reason: d.message,
    };
    report.rejected.push(rec);
    report.ok = false;
    deps.log.warn("update state not saved", { ...rec });
    deps.onRejection?.(rec);
  }
  return report;
}

async function fetchIndex(
  deps: UpdateClientDeps,
  group: string,
): Promise<{ index: RepoIndex; notModified: boolean }> {
  const cached = deps.memory.cachedIndex(group);
  const fetchOpts = {
    maxBytes: deps.limits.indexMaxBytes,
    timeoutMs: deps.limits.timeoutMs,
    minBytesPerSecond: deps.limits.minBytesPerSecond,
  };
  const res = await deps.transport.get(INDEX_PATH(group), { ...fetchOpts, etag: cached?.etag });
  const now = deps.now();
  if (res.status === 304) {
    if (!cached) throw new UpdateError("UPD_PROTOCOL", `${INDEX_PATH(group)}: 304 without a cached index`);
    // The cache only holds verified indexes, but freshness is re-checked: 304s must not freeze us (R5).
    const index = parseIndex(cached.index, INDEX_PATH(group));
    checkIndexFresh(index, now, INDEX_PATH(group));
    return { index, notModified: true };
  }
  const sig = await deps.transport.get(INDEX_SIG_PATH(group), fetchOpts);
  if (sig.status !== 200) throw new UpdateError("UPD_PROTOCOL", `${INDEX_SIG_PATH(group)}: unexpected 304`);
  const memory = deps.memory.data.groups[group];
  const index = await verifyIndex(res.body, sig.body, {
    trust: deps.trust,
    group,
    now,
    file: INDEX_PATH(group),
    memory,
  });
  deps.memory.data.groups[group] = { lastSerial: index.serial, lastIndexSha384: sha384Hex(res.body) };
  deps.memory.save();
  deps.memory.cacheIndex(group, res.body, sig.body, res.etag);
  return { index, notModified: false };
}

async function installOne(
  deps: UpdateClientDeps,
  type: string,
  entry: RepoIndex["content"][string],
  installed: InstalledFacts | undefined,
): Promise<void> {
  const res = await deps.transport.get(entry.path, {
    // R6 at the transport: never read more than the signed index says the package weighs.
    maxBytes: entry.size,
    timeoutMs: deps.limits.timeoutMs,
    minBytesPerSecond: deps.limits.minBytesPerSecond,
    ...(deps.spool ? { spool: deps.spool } : {}),
  });
  if (res.status !== 200)
    throw new UpdateError("UPD_PROTOCOL", `${entry.path}: unexpected 304`, { file: entry.path });
  let staged: ReturnType<UpdateClientDeps["store"]["stage"]>;
  try {
    const { pkg, sha384 } = await verifyPackage(res.body, type, entry, installed, {
      trust: deps.trust,
      now: deps.now(),
      file: entry.path,
    });
    staged = deps.store.stage(pkg, sha384);
  } finally {
    // From here on the handler and the store read the staged copy, never the downloaded bytes.
    res.release?.();
  }
  const view = deps.store.view(staged);
  let prepared: Awaited<ReturnType<InProcessHost["prepare"]>>;
  try {
    await deps.host.validate(type, view);
    prepared = await deps.host.prepare(type, view);
  } catch (e) {
    // Signed content that its own handler refuses is a vendor defect: keep it out until a newer version
    // ships. A host that is merely unavailable says nothing about the content, so that is retried.
    if (!NOT_THE_CONTENTS_FAULT.has(describeError(e).code)) {
      try {
        deps.store.markBad(type, entry.version, describeError(e).message);
      } catch (markError) {
        // The handler's verdict is the error to report; failing to record it must not replace it.
        deps.log.warn("could not mark version bad", {
          type,
          version: entry.version,
          ...describeError(markError),
        });
      }
    }
    throw e;
  }
  try {
    deps.store.activate(staged);
  } catch (e) {
    await deps.host.discard(prepared);
    throw isOutpostError(e)
      ? e
      : new UpdateError("UPD_ACTIVATE_FAILED", `${type}: ${(e as Error).message}`, { cause: e });
  }
  rememberSigningTime(deps, type, staged.signingTime);
  await deps.host.commit(prepared);
  deps.log.info("content installed", {
    type,
    version: entry.version,
    previousVersion: installed?.version ?? null,
  });
}
