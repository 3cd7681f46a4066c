/**
 * DatasetA's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";

export const datasetAManifest: HandlerManifestInput = {
  name: "DatasetA",
  description: "Content scanner: hash and body signatures (ClamAV-compatible subset), archives",
  group: "scanner",
  privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false },
  limits: { memoryMb: 1024, cpuSeconds: 3600 },
  maxPackageBytes: 512 * 1024 * 1024,
  // `end` scans a whole streamed object in one call: a 2 GiB file on a loaded machine runs
  // past the default IPC budget (bench/scan-large.ts: HND_IPC_TIMEOUT after 30 s).
  callTimeoutSeconds: { end: 900 },
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(datasetAManifest);
}
