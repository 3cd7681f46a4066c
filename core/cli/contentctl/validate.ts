/**
 * The hook every signing or releasing contentctl command calls before it
 * signs or publishes (issue 12 item 16): the payload goes through the
 * agent's own handler in a sandboxed host (core/host/validate-offline.ts).
 * The handlers are the ones built into this executable (the entry point's
 * wiring, bin/contentctl.ts), so a new content type is validated as soon as
 * it is registered. A refusal keeps the handler's error code; the command
 * fails before anything is written.
 */
import { readFileSync } from "node:fs";
import { type OfflineResult, validateOffline, validatePackageOffline } from "../../host/validate-offline.ts";
import { collectRegularFiles } from "../../package/pack.ts";
import { wiredRegistry } from "../agent/session.ts";

export type { OfflineResult };

/** Validates a payload directory as `type` v`version` content. */
export async function validatePayloadDir(o: {
  type: string;
  version: number;
  dir: string;
  workDirFiles?: Record<string, Uint8Array>;
  source?: string;
}): Promise<OfflineResult> {
  const files = new Map((await collectRegularFiles(o.dir)).map((f) => [f.path, f.data] as const));
  return validateOffline({
    registry: await wiredRegistry(),
    type: o.type,
    version: o.version,
    files,
    workDirFiles: o.workDirFiles,
    source: o.source ?? o.dir,
  });
}

/** Validates a built package file (release start). */
export async function validatePackageFile(o: {
  file: string;
  type: string;
  workDirFiles?: Record<string, Uint8Array>;
}): Promise<OfflineResult> {
  return validatePackageOffline(new Uint8Array(readFileSync(o.file)), {
    registry: await wiredRegistry(),
    type: o.type,
    workDirFiles: o.workDirFiles,
    source: o.file,
  });
}

/** The Lua content keyring as a host work-dir file (rules pack --key, release start --content-key). */
export function keyringFile(path: string | undefined): Record<string, Uint8Array> | undefined {
  return path ? { "content-keys.json": new Uint8Array(readFileSync(path)) } : undefined;
}
