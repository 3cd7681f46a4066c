/**
 * Per-type checks `contentctl pack` runs on the source directory before it
 * signs anything, so a vendor finds a broken rule (with its file and line)
 * at pack time rather than from a fleet of rejections. The core knows no
 * content type: the entry point registers the checks (bin/contentctl.ts),
 * each a handler's own pure validator over the files.
 */
export type PackCheck = (dir: string) => void | Promise<void>;

const checks = new Map<string, () => Promise<PackCheck>>();

export function setPackChecks(entries: Record<string, () => Promise<PackCheck>>): void {
  for (const [type, load] of Object.entries(entries)) checks.set(type, load);
}

/** Throws the handler's error when `dir` would not validate as `type`; no-op for types without a check. */
export async function runPackCheck(type: string, dir: string): Promise<void> {
  const load = checks.get(type);
  if (load) await (await load())(dir);
}
