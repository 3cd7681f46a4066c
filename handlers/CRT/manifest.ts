/**
 * CRT's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";

export const crtManifest: HandlerManifestInput = {
  name: "CRT",
  description: "Removes known-incompatible software before install; on demand only, in the install group",
  group: "install",
  install: "on-demand",
  privileges: { runAs: "root", fs: { mode: "read-write", paths: ["/**"] }, net: "none", exec: true },
  limits: { memoryMb: 128, cpuSeconds: 1800 },
  maxPackageBytes: 4 * 1024 * 1024,
  // `remove` runs `apt-get -s remove` (60 s) and then the removal (300 s) per package: the default
  // 30 s IPC budget failed a real `apt-get remove sl` on a loaded machine with HND_IPC_TIMEOUT.
  callTimeoutSeconds: { scan: 120, remove: 900 },
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(crtManifest);
}
