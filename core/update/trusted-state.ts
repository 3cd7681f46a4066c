/**
 * The update trust core, free of I/O (modelled on python-tuf's
 * trusted_metadata_set): bytes and the remembered state go in, a verdict
 * comes out. The update client fetches; this file decides. Each check names
 * the rule it enforces; docs/update-protocol.md lists them.
 *
 *   R1  index signed by a chain to a trusted root (code-signing EKU, validity)
 *   R2  index is for the group we asked for
 *   R3  index serial never goes below the highest serial seen (rollback attack)
 *   R4  a re-used serial must carry identical bytes (equivocation)
 *   R5  index not expired (freeze attack)
 *   R6  package size equals the size the index declares (endless data / truncation)
 *   R7  package SHA-384 equals the digest the index declares (mix-and-match)
 *   R8  package signature, chain and every payload digest verify (openPackage)
 *   R9  package type and version are what the index promised
 *   R10 version strictly newer than the installed one (downgrade)
 *   R11 signing time not older than the newest package ever installed for the type (replay / stale
 *       cache), so a manual rollback to an older version does not re-open the door to packages
 *       signed between the two
 *   R12 a version number already installed must name the same bytes (a re-used version is reported)
 *
 * Administrator policy (agent config `policy`) narrows what R10/R11 allow:
 *   P1  a pinned content type installs only its pinned version
 *   P2  cadence pinned-n-1 installs the index's `previous` entry, one behind the group
 *   P3  cadence early polls the tenant's early group instead of its general one
 */
import { sha384Hex } from "../crypto/digest.ts";
import { type Trust, verifySignature } from "../crypto/verify.ts";
import { UpdateError } from "../errors.ts";
import type { VerifiedPackage } from "../package/open.ts";
import { parseIndex, type RepoIndex } from "../repo/index-format.ts";

export interface GroupMemory {
  /** Highest serial ever accepted for this group. */
  lastSerial: number;
  /** SHA-384 of the index bytes accepted at lastSerial. */
  lastIndexSha384: string;
}

export interface InstalledFacts {
  version: number;
  signingTime: string;
  /** SHA-384 of the installed package (R12); absent when the caller does not know it. */
  sha384?: string;
  /**
   * The newest signing time of any package ever installed for this type (R11). After a rollback
   * it is later than `signingTime`; absent means `signingTime` is the newest.
   */
  newestSigningTime?: string;
}

/** The later of two ISO times (either may be absent). */
export function laterTime(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Date.parse(b) > Date.parse(a) ? b : a;
}

export type IndexEntry = RepoIndex["content"][string];

export async function verifyIndex(
  indexBytes: Uint8Array,
  signature: Uint8Array,
  ctx: { trust: Trust; group: string; now: Date; file: string; memory?: GroupMemory },
): Promise<RepoIndex> {
  // R1: nothing in the index is read before its signature checks out. (The CMS stack loads with the
  // first signature to check: the selection rules here also serve processes that never check one.)
  await verifySignature(indexBytes, signature, ctx.trust, { now: ctx.now, file: ctx.file });
  const index = parseIndex(indexBytes, ctx.file);
  // R2: an index for another group could move us onto another rollout's content.
  if (index.group !== ctx.group) {
    throw new UpdateError(
      "IDX_WRONG_GROUP",
      `${ctx.file}: index is for group ${index.group}, expected ${ctx.group}`,
      {
        file: ctx.file,
      },
    );
  }
  if (ctx.memory) {
    // R3: a lower serial is an old, validly signed index replayed at us.
    if (index.serial < ctx.memory.lastSerial) {
      throw new UpdateError(
        "IDX_SERIAL_ROLLBACK",
        `${ctx.file}: serial ${index.serial} is lower than the last seen ${ctx.memory.lastSerial}`,
        { file: ctx.file },
      );
    }
    // R4: two different indexes with one serial means the signer equivocated; trust neither blindly.
    if (index.serial === ctx.memory.lastSerial && sha384Hex(indexBytes) !== ctx.memory.lastIndexSha384) {
      throw new UpdateError(
        "IDX_SERIAL_REUSED",
        `${ctx.file}: serial ${index.serial} re-used with different content`,
        {
          file: ctx.file,
        },
      );
    }
  }
  checkIndexFresh(index, ctx.now, ctx.file);
  return index;
}

/** R5, also applied to a cached index confirmed by a 304: a frozen mirror must not keep us on old content forever. */
export function checkIndexFresh(index: RepoIndex, now: Date, file: string): void {
  if (Date.parse(index.expires) <= now.getTime()) {
    throw new UpdateError("IDX_EXPIRED", `${file}: index expired at ${index.expires}`, { file });
  }
}

/** The administrator's policy as the trust core sees it (agent config `policy`). */
export interface ContentPolicy {
  cadence: "early" | "general" | "pinned-n-1";
  /** The group cadence `early` follows; without one, early behaves like general. */
  earlyGroup?: string;
  /** Content type → the only version this agent may install. */
  pins: Record<string, number>;
}

/** P3: the group this agent polls. */
export function policyGroup(group: string, policy: ContentPolicy | undefined): string {
  return policy?.cadence === "early" && policy.earlyGroup ? policy.earlyGroup : group;
}

export type Selection =
  | { entry: IndexEntry }
  | { hold: "up-to-date" | "pinned" | "held-back"; detail: string };

/**
 * Which of the index's entries for a type the policy points this agent at
 * (the current one, or `previous`), or why it stays where it is. Runs before
 * `decide`, which then applies R10 and the bad-version list to the chosen
 * entry. Holding is not a rejection: nothing is alerted.
 */
export function selectEntry(
  type: string,
  entry: IndexEntry,
  installed: InstalledFacts | undefined,
  policy: ContentPolicy | undefined,
): Selection {
  const pin = policy?.pins[type];
  // P1: a pin wins over the cadence; it can move forward to the pin, never back (R10 still holds).
  if (pin !== undefined) {
    if (installed?.version === pin) return { hold: "up-to-date", detail: `${type} is at its pinned v${pin}` };
    if (installed && installed.version > pin) {
      return {
        hold: "pinned",
        detail: `${type} v${installed.version} is newer than the pinned v${pin}; agent content rollback reaches older content`,
      };
    }
    const offered = [entry, entry.previous].find((e) => e?.version === pin);
    if (offered) return { entry: offered };
    return {
      hold: "pinned",
      detail: `${type}: the group offers v${entry.version}${entry.previous ? ` and v${entry.previous.version}` : ""}, not the pinned v${pin}`,
    };
  }
  if (policy?.cadence === "pinned-n-1") {
    const previous = entry.previous;
    // P2: one behind the group. With nothing installed and no N-1 offered, the current version
    // beats running without this content at all.
    if (!previous) {
      if (!installed) return { entry };
      return { hold: "held-back", detail: `${type}: the group offers no previous version to stay on` };
    }
    if (installed && installed.version > previous.version) {
      return {
        hold: "held-back",
        detail: `${type} v${installed.version} is already newer than the group's N-1 (v${previous.version})`,
      };
    }
    return { entry: previous };
  }
  return { entry };
}

/** What to do with one content type the index offers, before downloading anything. */
export type Decision =
  | { action: "install" }
  | { action: "skip"; why: "up-to-date" | "marked-bad" }
  | { action: "reject"; error: UpdateError };

export function decide(
  type: string,
  entry: IndexEntry,
  installed: InstalledFacts | undefined,
  opts: { isBad: boolean; maxPackageBytes: number; file: string },
): Decision {
  if (installed && entry.version === installed.version) {
    // R12: one version number, one package. Different bytes under the installed number are either a
    // vendor mistake or a mirror probing us; either way someone must hear of it, not a silent skip.
    if (installed.sha384 !== undefined && entry.sha384 !== installed.sha384) {
      return {
        action: "reject",
        error: new UpdateError(
          "UPD_VERSION_REUSED",
          `${opts.file}: ${type} version ${entry.version} is installed with SHA-384 ${installed.sha384.slice(0, 16)}…, the index names different bytes (${entry.sha384.slice(0, 16)}…) under the same version`,
          { file: opts.file },
        ),
      };
    }
    return { action: "skip", why: "up-to-date" };
  }
  // R10: stale mirrors and downgrade attacks offer versions older than what runs here.
  if (installed && entry.version < installed.version) {
    return {
      action: "reject",
      error: new UpdateError(
        "UPD_DOWNGRADE",
        `${opts.file}: ${type} version ${entry.version} is older than installed ${installed.version}`,
        { file: opts.file },
      ),
    };
  }
  // A version that crashed its handler or was rolled back by an admin stays out until a newer one is
  // published. Checked after R10 so an old, bad-marked version offered again is still reported.
  if (opts.isBad) return { action: "skip", why: "marked-bad" };
  if (entry.size > opts.maxPackageBytes) {
    return {
      action: "reject",
      error: new UpdateError(
        "UPD_TOO_LARGE",
        `${opts.file}: ${entry.size} bytes exceeds the ${type} handler's limit of ${opts.maxPackageBytes}`,
        { file: opts.file },
      ),
    };
  }
  return { action: "install" };
}

export async function verifyPackage(
  bytes: Uint8Array,
  type: string,
  entry: IndexEntry,
  installed: InstalledFacts | undefined,
  ctx: { trust: Trust; now: Date; file: string },
): Promise<{ pkg: VerifiedPackage; sha384: string }> {
  // R6: the transport already capped the read at entry.size; a short read is a truncated or swapped file.
  if (bytes.length !== entry.size) {
    throw new UpdateError(
      "UPD_SIZE_MISMATCH",
      `${ctx.file}: ${bytes.length} bytes, index declares ${entry.size}`,
      {
        file: ctx.file,
      },
    );
  }
  // R7: the index pins the exact package; any other validly signed package is a mix-and-match.
  const sha384 = sha384Hex(bytes);
  if (sha384 !== entry.sha384) {
    throw new UpdateError(
      "UPD_HASH_MISMATCH",
      `${ctx.file}: SHA-384 ${sha384.slice(0, 16)}… is not the one the index names`,
      {
        file: ctx.file,
      },
    );
  }
  // R8 (and the type half of R9) inside openPackage.
  const { openPackage } = await import("../package/open.ts");
  const pkg = await openPackage(bytes, ctx.trust, { file: ctx.file, now: ctx.now, expectedType: type });
  // R9: the index and the signed manifest must agree on the version.
  if (pkg.manifest.version !== entry.version) {
    throw new UpdateError(
      "UPD_VERSION_MISMATCH",
      `${ctx.file}: manifest says version ${pkg.manifest.version}, index says ${entry.version}`,
      { file: ctx.file },
    );
  }
  if (installed) {
    // R10 again, on the signed manifest rather than the index's word.
    if (pkg.manifest.version <= installed.version) {
      throw new UpdateError(
        "UPD_DOWNGRADE",
        `${ctx.file}: version ${pkg.manifest.version} is not newer than installed ${installed.version}`,
        { file: ctx.file },
      );
    }
    // R11: reject an otherwise valid package signed before the newest one ever installed here. The
    // installed one alone is not enough: after a rollback v2 → v1, a v3 signed before v2 is a replay.
    const newest = laterTime(installed.signingTime, installed.newestSigningTime)!;
    if (pkg.signingTime.getTime() < Date.parse(newest)) {
      const which =
        newest === installed.signingTime ? "the installed package" : "the newest package ever installed";
      throw new UpdateError(
        "UPD_REPLAY_OLDER_SIGNATURE",
        `${ctx.file}: signed ${pkg.signingTime.toISOString()}, before ${which} (${newest})`,
        { file: ctx.file },
      );
    }
  }
  return { pkg, sha384 };
}
