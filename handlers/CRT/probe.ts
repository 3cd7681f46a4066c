/**
 * Looks at the live system for what the rules name: Debian packages
 * (dpkg-query), systemd units (systemctl), paths (stat), running processes
 * (/proc/PID/comm). Runs in the install host group through its exec and fs
 * capabilities; every probe tolerates a missing tool (no systemd in a
 * container: no unit is found) rather than failing the whole pass.
 */
import type { Capabilities } from "../../core/handler/contract.ts";
import type { PackageFacts } from "./guard.ts";

export interface Probe {
  packages(names: readonly string[]): Promise<Map<string, PackageFacts>>;
  unitExists(unit: string): Promise<boolean>;
  pathExists(path: string): boolean;
  runningProcesses(): Set<string>;
}

type Caps = Pick<Capabilities, "exec" | "fs">;

export function liveProbe(caps: Caps): Probe {
  const exec = caps.exec;
  const fs = caps.fs;
  if (!exec || !fs) throw new Error("CRT needs the exec and fs capabilities (install group)");
  return {
    async packages(names) {
      const out = new Map<string, PackageFacts>();
      if (names.length === 0) return out;
      // One query for all names; unknown names go to stderr and are simply absent.
      const r = await exec.run(
        // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
        ["dpkg-query", "-W", "-f=${Package}\\t${db:Status-Status}\\t${Priority}\\t${Essential}\\n", ...names],
        { timeoutMs: 30_000 },
      );
      for (const line of r.stdout.split("\n")) {
        const [name, status, priority, essential] = line.split("\t");
        if (!name) continue;
        out.set(name, {
          installed: status === "installed",
          priority: priority ?? "",
          essential: essential === "yes",
        });
      }
      return out;
    },
    async unitExists(unit) {
      // `systemctl cat` exits 0 only for a unit file systemd knows; without systemd it fails and we see nothing.
      const r = await exec
        .run(["systemctl", "--no-pager", "cat", unit], { timeoutMs: 15_000 })
        .catch(() => null);
      return r?.code === 0;
    },
    pathExists(path) {
      return fs.stat(path) !== null;
    },
    runningProcesses() {
      const names = new Set<string>();
      for (const pid of fs.list("/proc")) {
        if (!/^\d+$/.test(pid)) continue;
        try {
          names.add(fs.readText(`/proc/${pid}/comm`).trim());
        } catch {
          // the process exited between list and read
        }
      }
      return names;
    },
  };
}
