/**
 * What an agent command needs to reach a running agent: its common flags and
 * the control client for a state dir. Apart from session.ts (which
 * re-exports both) so that a command that finds the agent running — `agent
 * scan` asking the agent's scanner, as clamdscan asks clamd — evaluates
 * neither the config schemas nor the in-process agent it will not need
 * (test/startup-imports.test.ts, bench/scan-startup.ts).
 */
import type { ArgsDef } from "citty";
import { ControlClient } from "../../control/client.ts";

export const agentArgs = {
  state: { type: "string", valueHint: "DIR", description: "agent state directory (default: from config)" },
  config: { type: "string", valueHint: "FILE", description: "agent config file (JSON)" },
  json: { type: "boolean", default: false, description: "print machine-readable JSON" },
} as const satisfies ArgsDef;

/** The running agent's client, or undefined when none answers for this state dir. */
export async function connectIfRunning(stateDir: string): Promise<ControlClient | undefined> {
  try {
    return await ControlClient.fromStateDir(stateDir);
  } catch (e) {
    if ((e as { code?: string }).code === "CTL_NOT_RUNNING") return undefined;
    throw e;
  }
}
