/**
 * `agent events replay FILE.jsonl [--json]`: sends recorded events to the
 * Behavior rules of the running agent (or an in-process one), as if the
 * sensor had seen them, and prints the detections. Events go in chunks that
 * stay under the control plane's body limit.
 */
import type { CommandDef } from "citty";
import { defineCommand } from "citty";
import { agentArgs, callHandler } from "../../core/cli/agent/session.ts";
import { printJson, printText, renderTable } from "../../core/cli/output.ts";
import { readEventsFile } from "./cli-agent-rules.ts";
import type { Detection } from "./engine.ts";
import type { InjectResult } from "./live.ts";

const CHUNK_EVENTS = 1000;
const CHUNK_BYTES = 512 * 1024;

export const replayCommand = defineCommand({
  meta: { name: "replay", description: "Replay recorded events (JSON lines) through the Behavior rules" },
  args: {
    ...agentArgs,
    file: { type: "positional", required: true, description: "events, one JSON object per line" },
  },
  async run({ args }) {
    const { events, lines } = readEventsFile(args.file);
    const lineOf = new Map(events.map((e, i) => [e, lines[i]]));
    const total = { events: 0, delivered: 0, filtered: 0, queued: 0, skipped: 0, disabled: [] as string[] };
    const detections: (Detection & { line: number | null })[] = [];
    let chunk: typeof events = [];
    let bytes = 0;
    const send = async () => {
      if (chunk.length === 0) return;
      const r = (await callHandler(
        args.state,
        "Behavior",
        "inject",
        { events: chunk },
        { configFile: args.config },
      )) as InjectResult;
      total.events += r.accepted;
      total.delivered += r.delivered;
      total.filtered += r.filtered;
      total.queued += r.queued;
      // Agents without the call deadline do not report it.
      total.skipped += r.skipped ?? 0;
      total.disabled.push(...r.disabled);
      // The agent answers with copies of the events; find the lines they came from.
      const byJson = new Map(chunk.map((e) => [JSON.stringify(e), e]));
      for (const d of r.detections) {
        const original = byJson.get(JSON.stringify(d.event));
        detections.push({ ...d, line: (original && lineOf.get(original)) ?? null });
      }
      chunk = [];
      bytes = 0;
    };
    for (const e of events) {
      const size = JSON.stringify(e).length;
      if (chunk.length >= CHUNK_EVENTS || bytes + size > CHUNK_BYTES) await send();
      chunk.push(e);
      bytes += size;
    }
    await send();
    const result = { ...total, detections };
    if (args.json) printJson(result);
    else {
      printText(
        detections.length
          ? renderTable(
              ["LINE", "RULE", "SEVERITY", "TITLE"],
              detections.map((d) => [d.line ?? "", d.rule, d.severity, d.title]),
            )
          : "no detections",
      );
      printText(
        `${total.events} events replayed: ${total.delivered} delivered, ${total.filtered} filtered${
          total.queued ? `, ${total.queued} held until ProductRulesFeed loads` : ""
        }${total.skipped ? `, ${total.skipped} skipped (a call reached its deadline)` : ""}${total.disabled.length ? `; rules disabled: ${total.disabled.join(", ")}` : ""}`,
      );
    }
    return result;
  },
});

// biome-ignore lint/suspicious/noExplicitAny: wraps a command of any argument shape
type AnyCommand = CommandDef<any>;

/**
 * `agent events` with `replay` beside it. The plain `events` command takes
 * value options (`--tail N`), which citty would mistake for subcommand
 * names, so `replay` is offered only when it is on the command line.
 */
export async function eventsWithReplay(
  base: () => Promise<AnyCommand>,
  argv = process.argv,
): Promise<AnyCommand> {
  const at = argv.indexOf("events");
  if (at >= 0 && argv.slice(at + 1).includes("replay")) {
    return defineCommand({
      meta: {
        name: "events",
        description: "Agent events; `replay FILE.jsonl` feeds recorded events to the rules",
      },
      subCommands: { replay: replayCommand },
    });
  }
  const cmd = await base();
  const meta = typeof cmd.meta === "function" ? await cmd.meta() : await cmd.meta;
  return {
    ...cmd,
    meta: {
      ...meta,
      description: `${meta?.description ?? ""} (replay recorded ones: agent events replay FILE.jsonl)`,
    },
  };
}
