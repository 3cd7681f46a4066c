/**
 * The CRT pass of `agent install --remove-incompatible`, as the seed
 * describes it: the installer downloads CRT, runs it before installing, and
 * removes it afterwards. Here that is an in-process agent on a throw-away
 * state dir that runs one update cycle for CRT alone (same index, same
 * signature and trust checks as all content), calls the handler in its
 * `install` host group, and deletes the state dir — CRT never stays on disk
 * and the install group exists only for this pass.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RemoveIncompatible } from "../../core/cli/agent/session.ts";
import { withOfflineAgent } from "../../core/cli/agent/session.ts";
import { loadConfig } from "../../core/config.ts";
import { InstallError } from "../../core/errors.ts";
import type { Finding } from "./engine.ts";

export const CRT_TYPE = "CRT";

export interface CrtPassReport {
  ok: boolean;
  version: number;
  dryRun: boolean;
  findings: Finding[];
  /** How long fetch + verify + run took, and where the content was (already deleted). */
  ms: number;
}

export const removeIncompatible: RemoveIncompatible = async (o) => {
  const t0 = performance.now();
  const stateDir = mkdtempSync(join(tmpdir(), "outpost-crt-"));
  try {
    const config = loadConfig({
      overrides: {
        stateDir,
        update: { repo: o.repo, group: o.group, trust: o.trust },
        // Nothing of this throw-away agent outlives it: no log files either.
        logs: { enabled: false },
      },
    });
    return await withOfflineAgent(config, async (agent) => {
      const cycle = await agent.update({ only: [CRT_TYPE] });
      const got = cycle.installed.find((i) => i.type === CRT_TYPE);
      if (!got) {
        const why = cycle.rejected.map((r) => `${r.file}: ${r.code}: ${r.reason}`).join("; ");
        throw new InstallError(
          "CRT_UNAVAILABLE",
          why
            ? `CRT content was rejected: ${why}`
            : `the repository offers no CRT content for group ${o.group} (${o.repo})`,
          { details: { rejected: cycle.rejected } },
        );
      }
      const r = (await agent.call(CRT_TYPE, "remove", { dryRun: o.dryRun })) as {
        version: number;
        dryRun: boolean;
        findings: Finding[];
      };
      const ok = r.findings.every((f) =>
        f.actions.every(
          (a) => a.state === "done" || a.state === "not-present" || (o.dryRun && a.state === "planned"),
        ),
      );
      const report: CrtPassReport = { ok, ...r, ms: Math.round(performance.now() - t0) };
      return report as unknown as { ok: boolean; [k: string]: unknown };
    });
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
};
