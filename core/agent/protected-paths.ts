/**
 * What no exclusion may cover (rule X3): the agent's own executable, its
 * install directory (from source: the checkout) and its state directory.
 * An exclusion there would let a rule — or anything it names — hide the
 * agent's files from the agent's own protection.
 */
import { realpathSync } from "node:fs";
import { defaultInstallDir } from "../host/launch.ts";

export function protectedPaths(stateDir: string): string[] {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return p;
    }
  };
  return [
    ...new Set([process.execPath, real(process.execPath), defaultInstallDir(), stateDir, real(stateDir)]),
  ];
}
