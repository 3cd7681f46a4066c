/**
 * `agent rules …`:
 *
 *   agent rules test RULE.lua… --events FILE.jsonl [--product LIB.lua|DIR]… [--json]
 *       runs rules against recorded events offline, in the same sandbox and
 *       limits the agent uses; prints detections, rule logs and telemetry, and
 *       proves the rules' conditions change no detection (prefilter-check.ts)
 *   agent rules stats [--json]            per-rule telemetry of the running rules
 *   agent rules install-key FILE          provisions the content keyring (docs/rules.md)
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { defineCommand } from "citty";
import { agentArgs, callHandler, loadAgentConfig } from "../../core/cli/agent/session.ts";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { printJson, printText, renderTable, UsageError } from "../../core/cli/output.ts";
import { HandlerError } from "../../core/errors.ts";
import {
  RULE_NAME_RE,
  RuleLimitsSchema,
  type RuleSource,
  RulesSourceConfigSchema,
} from "../_shared/lua/format.ts";
import { installKeyring } from "../_shared/lua/keys.ts";
import { BehaviorEngine, type EngineStats, type RuleStats } from "./engine.ts";
import { type BehaviorEvent, parseEvents } from "./events.ts";
import { checkPrefilter, processAll } from "./prefilter-check.ts";

function ruleFrom(file: string): RuleSource {
  const name = basename(file).replace(/\.lua$/, "");
  if (!RULE_NAME_RE.test(name)) throw new UsageError("CLI_USAGE", `${file}: rule names are [A-Za-z0-9._-]`);
  return { name, file, source: readFileSync(file, "utf8") };
}

/** Lua files given one by one or as a directory (its rules.json `order` first, then by name). */
function sources(paths: string[]): RuleSource[] {
  const out: RuleSource[] = [];
  for (const p of paths) {
    if (statSync(p).isDirectory()) {
      const cfgFile = join(p, "rules.json");
      const order = existsSync(cfgFile)
        ? (RulesSourceConfigSchema.parse(JSON.parse(readFileSync(cfgFile, "utf8"))).order ?? [])
        : [];
      const files = readdirSync(p)
        .filter((f) => f.endsWith(".lua"))
        .sort();
      const names = [
        ...order.map((n) => `${n}.lua`),
        ...files.filter((f) => !order.includes(f.replace(/\.lua$/, ""))),
      ];
      for (const f of names) out.push(ruleFrom(join(p, f)));
    } else out.push(ruleFrom(p));
  }
  return out;
}

export function readEventsFile(file: string, now = Date.now()): { events: BehaviorEvent[]; lines: number[] } {
  const raw: unknown[] = [];
  const lines: number[] = [];
  readFileSync(file, "utf8")
    .split("\n")
    .forEach((line, i) => {
      if (line.trim() === "" || line.trimStart().startsWith("#")) return;
      try {
        raw.push(JSON.parse(line));
      } catch (e) {
        throw new HandlerError("HND_EVENT_INVALID", `${file}:${i + 1}: not JSON (${(e as Error).message})`, {
          file,
        });
      }
      lines.push(i + 1);
    });
  // A file may hold any number of events; callers send them on in bounded chunks.
  return {
    events: parseEvents(raw, now, (k) => `${file}:${lines[k] ?? "?"}`, Number.POSITIVE_INFINITY),
    lines,
  };
}

function statsTable(rules: RuleStats[]): string {
  return renderTable(
    ["RULE", "CALLS", "TOTAL MS", "MAX MS", "FAULTS", "STATE", "LAST ERROR"],
    rules.map((r) => [
      r.name,
      r.calls,
      r.timeMs.toFixed(2),
      r.maxMs.toFixed(3),
      r.faults,
      r.disabled ? "disabled" : "ok",
      r.lastError ?? "",
    ]),
  );
}

const test = defineCommand({
  meta: { name: "test", description: "Run rules against recorded events, offline (no agent needed)" },
  args: {
    rules: { type: "positional", required: true, description: "rule file(s) or directory (*.lua)" },
    events: { type: "string", required: true, valueHint: "FILE.jsonl", description: "one event per line" },
    product: {
      type: "string",
      valueHint: "LIB.lua|DIR",
      description: "ProductRulesFeed module(s) loaded first; a directory or a file",
    },
    limits: {
      type: "string",
      valueHint: "JSON",
      description: 'per-call limits, e.g. {"instructions":100000}',
    },
    json: { type: "boolean", default: false, description: "print detections, logs and telemetry as JSON" },
    "prefilter-check": {
      type: "boolean",
      default: true,
      description:
        "also run without the rules' on() conditions and fail (exit 3) unless the detections are identical; --no-prefilter-check skips it",
    },
  },
  async run({ args }) {
    const positional = (args._ as string[] | undefined)?.length ? (args._ as string[]) : [args.rules];
    const rules = sources(positional);
    let limits: ReturnType<typeof RuleLimitsSchema.parse>;
    try {
      limits = RuleLimitsSchema.parse(args.limits ? JSON.parse(args.limits) : {});
    } catch (e) {
      throw new UsageError("CLI_USAGE", `--limits: ${(e as Error).message}`);
    }
    const library = args.product ? { version: 0, modules: sources([args.product]), limits } : null;
    const { events, lines } = readEventsFile(args.events);
    const lineOf = new Map(events.map((e, i) => [e, lines[i]]));
    const engine = await BehaviorEngine.create(rules, limits, library);
    try {
      const r = processAll(engine, events);
      const stats: EngineStats = engine.stats();
      const detections = r.detections.map((d) => ({
        line: lineOf.get(d.event) ?? null,
        rule: d.rule,
        title: d.title,
        severity: d.severity,
        fields: d.fields,
        event: d.event,
      }));
      const check = args["prefilter-check"]
        ? await checkPrefilter(
            rules,
            limits,
            library,
            events,
            r.detections,
            stats.rules.reduce((n, x) => n + x.calls, 0),
          )
        : null;
      const prefilter = check && {
        ...check,
        differences: check.differences.map((d) => ({ ...d, line: lines[d.event] ?? null })),
        ...(check.identical
          ? {}
          : {
              error: new HandlerError(
                "HND_RULE_PREFILTER_MISMATCH",
                check.differences[0]
                  ? `${check.differences[0].rule}: its on() conditions change the detections (first at ${args.events}:${lines[check.differences[0].event] ?? "?"}, ${check.differences[0].kind} with the pre-filter)`
                  : `${args.events}: without the pre-filter ${check.skippedWithout} events were not delivered (a call reached its deadline), so the detections cannot be compared`,
              ).toJSON(),
            }),
      };
      const result = {
        events: r.events,
        delivered: r.delivered,
        filtered: r.filtered,
        skipped: r.skipped,
        detections,
        logs: r.logs,
        disabled: r.disabled,
        rules: stats.rules,
        aggregation: stats.aggregation,
        conditions: stats.conditions,
        prefilter,
      };
      if (prefilter && !prefilter.identical) process.exitCode = EXIT.CONTENT;
      if (args.json) printJson(result);
      else {
        printText(
          detections.length
            ? renderTable(
                ["LINE", "RULE", "SEVERITY", "TITLE", "FIELDS"],
                detections.map((d) => [d.line ?? "", d.rule, d.severity, d.title, JSON.stringify(d.fields)]),
              )
            : "no detections",
        );
        for (const l of r.logs) printText(`log ${l.rule}: ${l.message}`);
        printText(
          `\n${r.events} events, ${r.delivered} delivered, ${r.filtered} filtered\n${statsTable(stats.rules)}`,
        );
        if (prefilter) {
          printText(
            prefilter.identical
              ? `\npre-filter: identical detections with and without the rules' conditions (${prefilter.withPrefilter}; reactor calls ${prefilter.callsWith} vs ${prefilter.callsWithout})`
              : `\npre-filter: ${prefilter.error?.code}: ${prefilter.error?.message}\n${prefilter.differences
                  .map((d) => `  line ${d.line ?? "?"} ${d.rule}: ${d.kind} ${JSON.stringify(d.fields)}`)
                  .join("\n")}`,
          );
        }
      }
      return result;
    } finally {
      engine.close();
    }
  },
});

const stats = defineCommand({
  meta: { name: "stats", description: "Per-rule telemetry of the loaded Behavior rules" },
  args: { ...agentArgs },
  async run({ args }) {
    const s = (await callHandler(args.state, "Behavior", "stats", {}, { configFile: args.config })) as
      | (EngineStats & { version: number; libraryVersion: number | null })
      | { waitingFor: string };
    if (args.json) printJson(s);
    else if ("waitingFor" in s) printText(`Behavior is waiting for ${s.waitingFor}`);
    else {
      printText(
        `Behavior v${s.version} (product library ${s.libraryVersion ?? "none"}): ${s.events} events, ${s.filtered} filtered, Lua heap ${(s.heapBytes / 1024).toFixed(0)} KiB`,
      );
      printText(statsTable(s.rules));
    }
    return s;
  },
});

const installKey = defineCommand({
  meta: {
    name: "install-key",
    description:
      "Provision the content keyring for the Lua host groups (0600; 0640 to the agent user's group for a host that drops to it)",
  },
  args: {
    ...agentArgs,
    file: { type: "positional", required: true, description: "keyring JSON (from contentctl rules keygen)" },
  },
  run({ args }) {
    const config = loadAgentConfig(args);
    const installed = installKeyring(config.stateDir, resolve(args.file), { user: config.hosts.user });
    if (args.json) printJson({ installed });
    else printText(`installed content keyring:\n  ${installed.join("\n  ")}`);
    return { installed };
  },
});

export default defineCommand({
  meta: { name: "rules", description: "Behavior rules: test offline, telemetry, content keys" },
  subCommands: { test, stats, "install-key": installKey },
});
