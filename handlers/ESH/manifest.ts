/**
 * ESH's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";

export const eshManifest: HandlerManifestInput = {
  name: "ESH",
  description: "Endpoint self-help: regular expressions over local logs, linked to KB articles",
  group: "esh",
  privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false },
  limits: { memoryMb: 128, cpuSeconds: 86400 },
  maxPackageBytes: 4 * 1024 * 1024,
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(eshManifest);
}
