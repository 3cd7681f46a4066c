/**
 * `agent selfhelp [--json]`: the self-help findings the ESH rules hold —
 * which KB article applies, since when, how often. Asks the running agent
 * (or opens the state dir offline, where no logs are being read and the
 * list is empty). `--json` prints `{version, rules, findings[], counters}`
 * (docs/cli.md).
 */
import { defineCommand } from "citty";
import { printJson, printText } from "../../core/cli/output.ts";
import type { Finding } from "./engine.ts";

export type CallHandler = (type: string, method: string, args: unknown) => Promise<unknown>;

export function makeSelfhelpCommand(callHandler: CallHandler) {
  return defineCommand({
    meta: {
      name: "selfhelp",
      description: "List self-help findings: knowledge-base articles that match this agent's logs (ESH)",
    },
    args: {
      json: {
        type: "boolean",
        default: false,
        description: "print {version, rules, findings, counters} as JSON",
      },
    },
    async run({ args }) {
      const r = (await callHandler("ESH", "findings", {})) as {
        version: number;
        rules: number;
        findings: Finding[];
      };
      if (args.json) {
        printJson(r);
        return r;
      }
      if (r.findings.length === 0) printText(`no self-help findings (${r.rules} rules, ESH v${r.version})`);
      for (const f of r.findings) {
        printText(
          `${f.kba.id}  ${f.kba.title}\n  ${f.kba.url}\n  rule ${f.ruleId} on ${f.sources.join(", ")}: ${f.count} match(es), first ${f.firstSeen}, last ${f.lastSeen}`,
        );
      }
      return r;
    },
  });
}
