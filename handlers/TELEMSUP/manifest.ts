/**
 * TELEMSUP's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";

export const telemsupManifest: HandlerManifestInput = {
  name: "TELEMSUP",
  description: "Telemetry submission settings: server, verb, resource root, headers, interval",
  group: "telemetry",
  privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false },
  limits: { memoryMb: 64, cpuSeconds: 600 },
  maxPackageBytes: 64 * 1024,
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(telemsupManifest);
}
