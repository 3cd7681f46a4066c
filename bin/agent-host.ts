/**
 * `agent host …` straight from bin/agent.ts: a host process evaluates its
 * own group's handlers and the host runtime, never the command tree, the
 * config schema or the control-plane client (issue 21, Footprint — each
 * module stays in the heap of every host for its whole life). The wiring
 * is the same as agent-main.ts's (`hostRegistry`, `registry`).
 */
// Must be evaluated before @peculiar/x509 (via tsyringe), which AgentSoftware's checks reach.
import "reflect-metadata";
import { HostUsageError, parseHostArgv, runHost } from "../core/host/entry.ts";
import { writeStderr } from "../core/stdio.ts";

try {
  await runHost(parseHostArgv(process.argv.slice(3)), {
    group: (g) => import("../handlers/host-registry.ts").then((m) => m.registryForGroup(g)),
    all: () => import("../handlers/index.ts").then((m) => m.defaultRegistry()),
  });
} catch (e) {
  writeStderr(`agent host: ${e instanceof HostUsageError ? `${e.code}: ` : ""}${(e as Error).message}\n`);
  process.exit(e instanceof HostUsageError ? 2 : 5);
}
