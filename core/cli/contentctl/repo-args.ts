/** Argument parsing and output shared by the repository commands (publish, resign). */
import { ConfigError } from "../../errors.ts";
import type { RepoIndex } from "../../repo/index-format.ts";

/** `--expires-days`: digits only (Number() would take "1e3" or ""), 1..366. */
export function parseDays(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const days = /^[0-9]{1,3}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(days >= 1 && days <= 366)) {
    throw new ConfigError(
      "CFG_INVALID_ARGUMENT",
      `--expires-days must be an integer 1..366, got ${JSON.stringify(raw)}`,
    );
  }
  return days;
}

export function formatIndex(index: RepoIndex): string {
  const lines = [
    `group ${index.group}: serial ${index.serial}, issued ${index.issued}, expires ${index.expires}`,
  ];
  for (const [type, e] of Object.entries(index.content)) {
    lines.push(`  ${type} v${e.version}  ${e.path}  ${e.size} bytes`);
  }
  return `${lines.join("\n")}\n`;
}
