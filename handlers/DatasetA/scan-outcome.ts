/**
 * What a scan takes and gives back: limits, detections, outcomes — the
 * scanner's contract with its requesters (scan/service.ts, on-access) and
 * over IPC (index.ts). engine.ts re-exports all of it.
 */

import type { ObjectKind } from "../_shared/filetype/filetype.ts";
import type { AuthenticodeResult } from "./authenticode.ts";

export interface ScanLimits {
  /** Containers nested deeper than this are not opened. */
  maxDepth: number;
  /** Members opened per top-level object, all levels together. */
  maxFiles: number;
  /** Largest single member inflated. */
  maxMemberBytes: number;
  /** Decompressed bytes per top-level object, all members together. */
  maxScanBytes: number;
  /** Expansion ratio at which hitting a size limit is reported as an archive bomb. */
  maxRatio: number;
  /** Members up to this size are inflated in memory; larger ones go to a spill file. */
  memoryBytes: number;
  /**
   * Verification steps per signature per object (defends against pathological
   * patterns/inputs); one anchor hit may spend at most ANCHOR_STEPS of it. A
   * signature that runs out is reported as a `budget` limit and skipped for
   * the rest of the object; the other signatures are still checked.
   */
  verifyBudget: number;
  /**
   * Stop matching an object's signatures at its first detection that stands
   * without a Live Protection lookup (clamscan's default), instead of
   * reporting every signature that matches (`clamscan --allmatch`). Members of
   * a container are still scanned: each is its own object, with its own
   * digest an exclusion may name.
   */
  firstMatch: boolean;
}

/** Most steps one anchor hit may cost: a wide gap is searched this far, then the hit is given up. */
export const ANCHOR_STEPS = 100_000;

export const DEFAULT_LIMITS: ScanLimits = {
  maxDepth: 10,
  maxFiles: 10_000,
  maxMemberBytes: 256 * 1024 * 1024,
  maxScanBytes: 1024 * 1024 * 1024,
  maxRatio: 100,
  memoryBytes: 16 * 1024 * 1024,
  verifyBudget: 5_000_000,
  firstMatch: false,
};

/** "ml": a live MLModel scored the object at or above its threshold (added by the scan requester). */
export type DetectionKind = "hash" | "body" | "heuristic" | "ml";

export interface Detection {
  name: string;
  kind: DetectionKind;
  /** Names of the containers and member leading to the object ([] = the scanned object itself). */
  path: string[];
  /** Start of the body match within the object. */
  offset?: number;
  /** The signature asks for a Live Protection lookup. */
  lookup: boolean;
  /** file:line of the signature in the dataset. */
  source?: string;
  /** SHA-256 of the object the detection is in. */
  sha256: string;
  size: number;
  objectKind: ObjectKind;
  detail?: string;
}

export interface ExecutableFound {
  path: string[];
  kind: "pe" | "elf" | "macho";
  sha256: string;
  size: number;
  /** PE only. */
  authenticode?: AuthenticodeResult;
}

export interface LimitNote {
  path: string[];
  limit: "depth" | "files" | "member-size" | "scan-size" | "encrypted" | "unsupported" | "corrupt" | "budget";
  detail: string;
}

export interface ScanOutcome {
  kind: ObjectKind;
  size: number;
  /** SHA-256 of the scanned object when it was needed (detection, executable, hash signature). */
  sha256?: string;
  detections: Detection[];
  executables: ExecutableFound[];
  limits: LimitNote[];
  objects: number;
  bytesScanned: number;
  durationMs: number;
}

export const BOMB_NAME = "Outpost.Heuristic.ArchiveBomb";

export interface DatasetStats {
  hashSignatures: number;
  bodySignatures: number;
  lookupSignatures: number;
  anchors: number;
  uniqueAnchors: number;
  shortAnchors: number;
  indexBytes: number;
  filterBits: number;
  /** Signatures skipped for functionality levels outside ENGINE_FLEVEL (signatures.ts). */
  flevelSkipped: number;
}
