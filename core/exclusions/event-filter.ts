/**
 * Drops sensor events that come from excluded processes before they reach
 * a consumer (Behavior: "events from excluded processes are not delivered
 * to rules", docs/exclusions.md). A process is judged once, at its
 * process.start (executable path, name, image hash); its later events —
 * file writes, forks, its exit — carry only the pid, so the verdict is
 * remembered per pid until process.exit. Children are judged on their
 * own exec: excluding a backup tool does not exclude the shell it runs.
 */

import type { ExclusionScope } from "../exclusions-config.ts";
import type { ExclusionMatcher } from "./matcher.ts";

type Event = { type: string } & Record<string, unknown>;

const MAX_PIDS = 65_536;

export class ExcludedEventFilter {
  private readonly excludedPids = new Set<number>();
  dropped = 0;

  constructor(private readonly scope: ExclusionScope) {}

  filter<E extends Event>(batch: readonly E[], matcher: ExclusionMatcher): E[] {
    if (matcher.size === 0 && this.excludedPids.size === 0) return batch as E[];
    const out: E[] = [];
    for (const e of batch) {
      const pid = typeof e.pid === "number" ? e.pid : undefined;
      if (e.type === "process.start") {
        const excluded = matcher.process(this.scope, {
          ...(typeof e.exe === "string" && e.exe ? { exe: e.exe } : {}),
          ...(typeof e.name === "string" && e.name ? { name: e.name } : {}),
          ...(typeof e.sha256 === "string" && e.sha256 ? { sha256: e.sha256 } : {}),
        });
        if (pid !== undefined) {
          if (excluded && this.excludedPids.size < MAX_PIDS) this.excludedPids.add(pid);
          else if (!excluded) this.excludedPids.delete(pid);
        }
        if (excluded) {
          this.dropped++;
          continue;
        }
      } else if (pid !== undefined && this.excludedPids.has(pid)) {
        if (e.type === "process.exit") this.excludedPids.delete(pid);
        this.dropped++;
        continue;
      }
      out.push(e);
    }
    return out;
  }
}
