/**
 * MLModel's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";

export const mlModelManifest: HandlerManifestInput = {
  name: "MLModel",
  description: "WebAssembly ML models scored on scanned objects (telemetry or live)",
  group: "scanner",
  privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false },
  limits: { memoryMb: 512, cpuSeconds: 3600 },
  maxPackageBytes: 64 * 1024 * 1024,
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(mlModelManifest);
}
