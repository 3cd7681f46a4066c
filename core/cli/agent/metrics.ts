/**
 * `agent metrics [--json]`: the running agent's Prometheus metrics
 * (GET /metrics). Text: the exposition format as served. --json: metric
 * families `[{ name, type, help, samples: [{ name, labels, value }] }]`.
 */
import { defineCommand } from "citty";
import { ControlClient } from "../../control/client.ts";
import { printJson, printText } from "../output.ts";
import { agentArgs, loadAgentConfig } from "./session.ts";

export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  type: string;
  help: string;
  samples: MetricSample[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/gy;

function unescapeLabel(v: string): string {
  return v.replace(/\\(.)/g, (_, ch: string) => (ch === "n" ? "\n" : ch));
}

function parseValue(v: string): number {
  if (v === "+Inf") return Number.POSITIVE_INFINITY;
  if (v === "-Inf") return Number.NEGATIVE_INFINITY;
  return Number(v);
}

/** Parses Prometheus text format 0.0.4; samples attach to the family their name extends. */
export function parsePrometheusText(text: string): MetricFamily[] {
  const families = new Map<string, MetricFamily>();
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) {
      f = { name, type: "untyped", help: "", samples: [] };
      families.set(name, f);
    }
    return f;
  };
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    const meta = /^#\s+(HELP|TYPE)\s+(\S+)\s?(.*)$/.exec(line);
    if (meta) {
      const f = family(meta[2]!);
      if (meta[1] === "HELP") f.help = meta[3]!.replace(/\\n/g, "\n").replace(/\\\\/g, "\\");
      else f.type = meta[3]!.trim();
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const name = m[1]!;
    const labels: Record<string, string> = {};
    if (m[2]) {
      LABEL.lastIndex = 0;
      for (let lm = LABEL.exec(m[2]); lm; lm = LABEL.exec(m[2])) labels[lm[1]!] = unescapeLabel(lm[2]!);
    }
    const owner =
      families.get(name) ??
      [...families.values()].find(
        (f) => /^(_bucket|_sum|_count)$/.test(name.slice(f.name.length)) && name.startsWith(f.name),
      ) ??
      family(name);
    owner.samples.push({ name, labels, value: parseValue(m[3]!) });
  }
  return [...families.values()];
}

export default defineCommand({
  meta: { name: "metrics", description: "Print the running agent's Prometheus metrics (--json: parsed)" },
  args: agentArgs,
  async run({ args }) {
    const config = loadAgentConfig(args);
    const client = await ControlClient.fromStateDir(config.stateDir);
    const text = await client.metrics();
    if (args.json) printJson(parsePrometheusText(text));
    else printText(text);
  },
});
