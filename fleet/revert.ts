/**
 * Taking a group back after an abort. Agents refuse lower versions (R10) and
 * packages signed before the installed one (R11), so the previous payload is
 * re-packed as version = bad + 1 with a fresh signature and published with
 * the last good entry as its `previous`. A group that does not list the
 * aborted version is left alone; a type with no earlier content is withdrawn
 * from the group's index. Each step is logged in the release and persisted.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { TrustStore } from "../core/crypto/cms.ts";
import { sha384Hex } from "../core/crypto/digest.ts";
import { KEY_FILES, loadSigningKeys } from "../core/crypto/keys.ts";
import { UpdateError } from "../core/errors.ts";
import { log } from "../core/log.ts";
import { checkPayload, openPackage, readPackage } from "../core/package/open.ts";
import { packDirectory } from "../core/package/pack.ts";
import type { PreviousEntry } from "../core/repo/index-format.ts";
import { publish, readRepoIndex, removeType } from "../core/repo/publish.ts";
import type { ReleaseConfig } from "./config.ts";
import { readPackageFile, readStaged, stagePackage } from "./staged.ts";
import { appendLog, type GroupProgress, type PackageRef, type Release } from "./state.ts";

const logger = log.child({ component: "release" });

export interface RevertContext {
  config: ReleaseConfig;
  now(): Date;
}

export async function revertGroup(
  ctx: RevertContext,
  r: Release,
  g: GroupProgress,
  persist: () => Promise<void>,
): Promise<void> {
  const now = ctx.now();
  const listed = readRepoIndex(ctx.config.paths.repo, g.name)?.content[r.type];
  if (!listed || listed.sha384 !== r.package.sha384) {
    g.revertedAt = now.toISOString();
    appendLog(
      r,
      now,
      "reverted",
      "the group does not list the aborted version; nothing to take back",
      g.name,
    );
    await persist();
    return;
  }
  if (!g.before) {
    // First release of this type: there is no earlier content to go back to. Stop offering it;
    // agents that crash on it fall back on their own protection (marked bad, handler unloaded).
    await removeType({
      repo: ctx.config.paths.repo,
      group: g.name,
      keys: ctx.config.paths.keys,
      type: r.type,
      now,
      expiresInDays: ctx.config.expiresDays,
    });
    g.revertedAt = now.toISOString();
    appendLog(r, now, "reverted", `no earlier ${r.type} in the group: type withdrawn from the index`, g.name);
    await persist();
    return;
  }
  const ref = await revertPackage(ctx, r, g.before, persist);
  const index = await publish({
    repo: ctx.config.paths.repo,
    group: g.name,
    keys: ctx.config.paths.keys,
    packageBytes: readStaged(ctx.config.paths.stateDir, ref),
    now,
    expiresInDays: ctx.config.expiresDays,
    previous: g.before,
  });
  g.revertedAt = now.toISOString();
  appendLog(
    r,
    now,
    "reverted",
    `v${g.before.version} content re-signed as v${r.abort?.revertVersion}; index serial ${index.serial}`,
    g.name,
  );
  logger.warn("group taken back to the last good content", {
    release: r.id,
    group: g.name,
    content: g.before.version,
    version: r.abort?.revertVersion,
  });
  await persist();
}

/** The last good payload as a new package: version bad + 1, signed now. Built once per previous package. */
async function revertPackage(
  ctx: RevertContext,
  r: Release,
  before: PreviousEntry,
  persist: () => Promise<void>,
): Promise<PackageRef> {
  const abort = r.abort;
  if (!abort) throw new UpdateError("REL_INTERNAL", `release ${r.id} is not aborted`);
  const known = abort.reverts[before.sha384];
  if (known && existsSync(join(ctx.config.paths.stateDir, known.file))) return known;
  const file = join(ctx.config.paths.repo, before.path);
  const bytes = readPackageFile(file);
  if (sha384Hex(bytes) !== before.sha384) {
    throw new UpdateError("REL_PREVIOUS_CHANGED", `${file}: does not match the SHA-384 the group listed`, {
      file,
    });
  }
  // Only our own chain's content is re-signed: check the old signature as of when it was made.
  const created = new Date(readPackage(bytes, { file }).manifest.created);
  const trust = await TrustStore.load(join(ctx.config.paths.keys, KEY_FILES.rootCert));
  const old = await openPackage(bytes, trust, {
    file,
    now: new Date(created.getTime() + 1000),
    expectedType: r.type,
  });
  const now = ctx.now();
  const tmp = mkdtempSync(join(ctx.config.paths.stateDir, "revert-"));
  let repacked: Uint8Array;
  try {
    for (const [path, data] of checkPayload(readPackage(bytes, { file }), file)) {
      mkdirSync(dirname(join(tmp, path)), { recursive: true });
      writeFileSync(join(tmp, path), data);
    }
    repacked = await packDirectory({
      type: r.type,
      version: abort.revertVersion,
      keys: await loadSigningKeys(ctx.config.paths.keys),
      dir: tmp,
      now,
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const ref = stagePackage(ctx.config.paths.stateDir, r.type, abort.revertVersion, repacked, now);
  abort.reverts[before.sha384] = ref;
  appendLog(
    r,
    now,
    "repacked",
    `v${old.manifest.version} payload (${old.files.size} files) re-signed as v${abort.revertVersion}`,
  );
  await persist();
  return ref;
}
