/**
 * The argv of `agent update --once` from a local repository, as the scan
 * benchmarks install their signed DatasetA (and examples) into a state dir
 * before timing anything. One place, so every bench installs the same way.
 */
import { join } from "node:path";

export function updateOnceArgv(
  agent: string[],
  o: { repo: string; group: string; keys: string; state: string },
): string[] {
  return [
    ...agent,
    "update",
    "--once",
    "--repo",
    o.repo,
    "--group",
    o.group,
    "--trust",
    join(o.keys, "root.pem"),
    "--state",
    o.state,
  ];
}
