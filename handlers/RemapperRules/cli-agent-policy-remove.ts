/**
 * `agent policy remove NAME.xml`: drops a document `agent policy apply`
 * stored, then re-applies (the fleet's document of that name, if any, is in
 * force again; rule files that need the document fail and keep their
 * previous values). Exit 2 when no local document has that name.
 */
import { defineCommand } from "citty";
import {
  agentArgs,
  connectIfRunning,
  loadAgentConfig,
  withOfflineAgent,
} from "../../core/cli/agent/session.ts";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { printJson, printText } from "../../core/cli/output.ts";
import { readLocalDocuments, readPersisted, removeLocalDocument } from "../../core/effective/state.ts";
import { ConfigError } from "../../core/errors.ts";

export default defineCommand({
  meta: { name: "remove", description: "Remove a policy document applied locally, and re-apply" },
  args: {
    ...agentArgs,
    name: { type: "positional", required: true, description: "Document name, e.g. threat-protection.xml" },
  },
  async run({ args }) {
    const config = loadAgentConfig(args);
    const notFound = () =>
      new ConfigError(
        "CFG_INVALID_ARGUMENT",
        `no local policy document ${JSON.stringify(args.name)} (local: ${
          readLocalDocuments(config.stateDir)
            .map((d) => d.name)
            .join(", ") || "none"
        })`,
      );
    const client = await connectIfRunning(config.stateDir);
    if (client) {
      if (!removeLocalDocument(config.stateDir, args.name)) throw notFound();
      await client.update();
    } else {
      await withOfflineAgent(config, async (agent) => {
        if (!removeLocalDocument(config.stateDir, args.name)) throw notFound();
        await agent.effective.apply();
      });
    }
    const state = readPersisted(config.stateDir, () => {});
    const failures = state.failures.map(({ at: _at, ...f }) => f);
    if (args.json) printJson({ removed: args.name, applied: state.overlays.map((o) => o.file), failures });
    else {
      const lines = [`${args.name}: removed`];
      for (const f of failures) lines.push(`  FAILED ${f.file}: ${f.code}: ${f.message}`);
      printText(lines.join("\n"));
    }
    if (failures.length > 0) process.exitCode = EXIT.CONTENT;
  },
});
