#!/usr/bin/env bun
/**
 * `agent` entry point. `agent --version` is answered before anything else is
 * evaluated (it is what fleet tooling runs most, and it must work even when
 * some subsystem is broken); host processes go to agent-host.ts, which loads
 * no command tree; everything else lives in agent-main.ts.
 */
import { jitPolicyFor } from "../core/jsc-options.ts";
import { COMMIT, VERSION } from "../core/version.ts";

const args = process.argv.slice(2);
// The executable starts with a one-shot JIT policy (build.ts); the long-lived processes go back to
// the normal one at once, tuned by their JavaScriptCore options instead (core/jsc-options.ts).
const jitPolicy = jitPolicyFor(args);
if (jitPolicy !== undefined) Bun.unsafe.setJITPolicy(jitPolicy);
if (args.length === 1 && (args[0] === "--version" || args[0] === "-v")) {
  // console.log, not process.stdout: the node stream behind process.stdout costs ~20 ms to build (core/stdio.ts).
  console.log(`outpost-agent ${VERSION} (${COMMIT})`);
} else if (args[0] === "host" && !args.includes("--help") && !args.includes("-h")) {
  // A host process, started by the supervisor: no command tree in its heap (agent-host.ts). The
  // hosts a one-shot command starts parse interpreted as it does (core/cli/schema-mode.ts).
  (await import("../core/cli/schema-mode.ts")).interpretSchemasForOneShot(args);
  await import("./agent-host.ts");
} else if (args.length === 1 && args[0] === "crypto-worker") {
  // Signature checks for a supervisor or host that keeps the X.509 and CMS libraries out of its own
  // heap (core/crypto/remote-trust.ts): no command tree either.
  await (await import("./crypto-worker-main.ts")).cryptoWorkerMain("agent crypto-worker");
} else if (args.length === 1 && args[0] === "query-worker") {
  // The scheduled-query worker, started by the query host's watchdog for each run after an idle
  // spell: no command tree either (40 → 30 ms of CPU to ready, docs/queries.md). Same zod mode as before.
  (await import("../core/cli/schema-mode.ts")).interpretSchemasForOneShot(args);
  const { runWorker } = await import("../handlers/ScheduledQueryPack/worker.ts");
  await runWorker();
  process.exit(0);
} else {
  if (args[0] === "run") {
    // The supervisor re-executes itself once, before it loads anything, with the hosts'
    // JavaScriptCore options (core/jsc-reexec.ts); on success this call does not return.
    const { reexecWithJscOptions } = await import("../core/jsc-reexec.ts");
    const failed = reexecWithJscOptions(Bun.main.startsWith("/$bunfs/"));
    if (failed) console.error(`outpost-agent: ${failed}`);
  }
  // Before any schema is built: one-shot commands parse interpreted (core/cli/schema-mode.ts).
  (await import("../core/cli/schema-mode.ts")).interpretSchemasForOneShot(args);
  await import("./agent-main.ts");
}
