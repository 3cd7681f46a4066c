/**
 * The manifest APPFEED and USERAPPFEED share, on its own: what the
 * supervisor needs to know about them without evaluating their code
 * (handlers/manifests.ts).
 */
import type { HandlerManifestInput } from "../../../core/handler/contract.ts";

/** What a rule may read: package databases, application metadata, config, snap/flatpak state. */
export const APPFEED_READ_PATHS = [
  "/var/lib/dpkg/**",
  "/var/lib/rpm/**",
  "/usr/share/applications/**",
  "/opt/**",
  "/etc/**",
  "/var/lib/snapd/**",
  "/var/lib/flatpak/**",
  "/snap/**",
];

export function appfeedManifest(type: string, description: string): HandlerManifestInput {
  return {
    name: type,
    description,
    group: "appfeed",
    // Unprivileged and read-only: the package databases and application paths, plus the
    // read-only query tools of env.ts (exec). No network.
    privileges: {
      runAs: "agent",
      fs: { mode: "read-only", paths: APPFEED_READ_PATHS },
      net: "none",
      exec: true,
    },
    limits: { memoryMb: 256, cpuSeconds: 86400 },
    maxPackageBytes: 8 * 1024 * 1024,
  };
}
