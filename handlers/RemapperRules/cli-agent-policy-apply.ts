/**
 * `agent policy apply FILE.xml`: applies a policy document on this host
 * without the fleet service (air-gapped hosts, tests). The document is
 * checked first (X1–X4); a bad one changes nothing. It is then kept under
 * STATE/effective/local/ (a local document wins over a fleet one of the same
 * name) and applied: by the running agent (its next cycle, started now), or
 * in-process when none runs. Prints the per-rule-file outcome; exit 3 when a
 * rule file failed (its previous values stay).
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { defineCommand } from "citty";
import {
  agentArgs,
  connectIfRunning,
  loadAgentConfig,
  withOfflineAgent,
} from "../../core/cli/agent/session.ts";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { printJson, printText } from "../../core/cli/output.ts";
import { DOCUMENT_NAME_RE } from "../../core/effective/bundle.ts";
import { readPersisted, writeLocalDocument } from "../../core/effective/state.ts";
import { ConfigError } from "../../core/errors.ts";
import { parsePolicyXml } from "./xml.ts";

export default defineCommand({
  meta: { name: "apply", description: "Apply a policy document (XML) locally, without the fleet service" },
  args: {
    ...agentArgs,
    file: { type: "positional", required: true, description: "Policy document (XML, no DOCTYPE)" },
    name: { type: "string", description: "Document name the rule files refer to (default: the file's name)" },
  },
  async run({ args }) {
    const name = args.name ?? basename(args.file);
    if (!DOCUMENT_NAME_RE.test(name)) {
      throw new ConfigError(
        "CFG_INVALID_ARGUMENT",
        `document name ${JSON.stringify(name)}: letters, digits, . _ - and ending in .xml`,
      );
    }
    const xml = readFileSync(args.file, "utf8");
    parsePolicyXml(args.file, xml);
    const config = loadAgentConfig(args);
    const client = await connectIfRunning(config.stateDir);
    if (client) {
      writeLocalDocument(config.stateDir, name, xml);
      await client.update();
    } else {
      // Stored only once the state dir is ours (AGENT_LOCKED otherwise): a refusal changes nothing.
      await withOfflineAgent(config, async (agent) => {
        writeLocalDocument(config.stateDir, name, xml);
        await agent.effective.apply();
      });
    }
    const state = readPersisted(config.stateDir, () => {});
    const result = {
      document: name,
      applied: state.overlays.map((o) => o.file),
      failures: state.failures.map(({ at: _at, ...f }) => f),
    };
    if (args.json) printJson(result);
    else {
      const lines = [`${name}: stored; rule files in force: ${result.applied.join(", ") || "(none)"}`];
      for (const f of result.failures) lines.push(`  FAILED ${f.file}: ${f.code}: ${f.message}`);
      printText(lines.join("\n"));
    }
    if (result.failures.length > 0) process.exitCode = EXIT.CONTENT;
  },
});
