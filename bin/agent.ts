#!/usr/bin/env bun
/**
 * `agent` entry point. `agent --version` is answered before anything else is
 * evaluated (it is what fleet tooling runs most, and it must work even when
 * some subsystem is broken); everything else lives in agent-main.ts.
 */
import { COMMIT, VERSION } from "../core/version.ts";

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === "--version" || args[0] === "-v")) {
  process.stdout.write(`outpost-agent ${VERSION} (${COMMIT})\n`);
} else {
  // Before any schema is built: one-shot commands parse interpreted (core/cli/schema-mode.ts).
  (await import("../core/cli/schema-mode.ts")).interpretSchemasForOneShot(args);
  await import("./agent-main.ts");
}
