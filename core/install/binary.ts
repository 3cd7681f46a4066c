/**
 * The bytes that go into slot A. A compiled agent installs itself
 * (process.execPath). Run from a source tree (`bun bin/agent.ts install`)
 * there is no single executable, so slot A gets a two-line launcher that
 * execs this Bun on this tree — a development install, reported as such.
 * `--binary FILE` names the executable explicitly (e.g. dist/agent).
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { InstallError } from "../errors.ts";

export interface AgentBinary {
  kind: "compiled" | "file" | "launcher";
  source: string;
  bytes: Uint8Array;
}

const isCompiled = () => Bun.main.startsWith("/$bunfs/") || import.meta.url.includes("/$bunfs/");
const shq = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

export function agentBinary(explicit?: string): AgentBinary {
  if (explicit) {
    if (!existsSync(explicit))
      throw new InstallError("INST_BINARY", `${explicit}: agent executable not found`, { file: explicit });
    return { kind: "file", source: explicit, bytes: readFileSync(explicit) };
  }
  if (isCompiled())
    return { kind: "compiled", source: process.execPath, bytes: readFileSync(process.execPath) };
  const entry = fileURLToPath(new URL("../../bin/agent.ts", import.meta.url));
  const script = `#!/bin/sh\n# Development install: runs the source tree with Bun (agent install --binary FILE installs an executable).\nexec ${shq(process.execPath)} ${shq(entry)} "$@"\n`;
  return { kind: "launcher", source: entry, bytes: new TextEncoder().encode(script) };
}
