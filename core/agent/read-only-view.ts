/**
 * Host work directories for a read-only view of the state dir (issue 12
 * item 15: read-only commands change nothing on disk).
 *
 * An offline inquiry (`agent status`, `agent content list`, `agent query`,
 * `agent hmpa check`, `agent rep`, `agent selfhelp`, `handlers call`) loads
 * the installed content into real hosts, and a host works in its group's
 * work dir: it is created, chowned, handed to the handler as `caps.workDir`
 * and used as TMPDIR. Under STATE/hosts that would create directories and
 * files in the state dir being looked at. So a view gets a private throwaway
 * root instead (0700, under the system temp dir), seeded with copies of the
 * small top-level files each group's real work dir holds (its content
 * keyring: Lua rules cannot be decrypted without it), owner and mode kept so
 * an unprivileged host reads them as it would at home. The copies are
 * removed with the view.
 */
import {
  chownSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Files above this size are not carried into a view (keyrings are a few KiB). */
const MAX_SEED_BYTES = 1 << 20;

export interface ViewWorkRoot {
  /** The directory that holds the view's group work dirs (in place of STATE/hosts). */
  hostsDir: string;
  dispose(): void;
}

export function openViewWorkRoot(stateDir: string): ViewWorkRoot {
  const root = mkdtempSync(join(tmpdir(), "outpost-view-"));
  const hostsDir = join(root, "hosts");
  mkdirSync(hostsDir, { mode: 0o700 });
  seedFrom(join(stateDir, "hosts"), hostsDir);
  return { hostsDir, dispose: () => rmSync(root, { recursive: true, force: true }) };
}

function seedFrom(realHosts: string, viewHosts: string): void {
  if (!existsSync(realHosts) || !lstatSync(realHosts).isDirectory()) return;
  for (const group of readdirSync(realHosts)) {
    // Not a group: the supervisor's own files beside the work dirs (.state-view, core/host/state-view.ts).
    if (group.startsWith(".")) continue;
    const src = join(realHosts, group);
    const st = lstatSync(src);
    if (!st.isDirectory()) continue;
    const dst = join(viewHosts, group);
    mkdirSync(dst, { mode: 0o700 });
    for (const name of readdirSync(src)) {
      const f = join(src, name);
      const fst = lstatSync(f);
      if (!fst.isFile() || fst.size > MAX_SEED_BYTES) continue;
      copyFileSync(f, join(dst, name));
      chownSync(join(dst, name), fst.uid, fst.gid);
    }
  }
}
