/** Helpers for the table tests: a generator context, a fixture root, and running a real tool. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { GenContext } from "./context.ts";

export function ctxFor(root = "", warnings: string[] = []): GenContext {
  return { wants: () => true, paths: [], directories: [], likes: [], warn: (m) => warnings.push(m), root };
}

/** A throw-away root holding the given files (relative paths → contents). */
export function fixtureRoot(files: Record<string, string | Uint8Array>): {
  root: string;
  cleanup: () => void;
} {
  const root = mkdtempSync(join(tmpdir(), "outpost-tables-"));
  for (const [rel, body] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), body);
  }
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

export function tool(cmd: string[]): string {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

export const has = (cmd: string) => Bun.which(cmd) !== null;
