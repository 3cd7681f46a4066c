/**
 * `agent events [--follow] [--json] [--tail N] [--since ID]`: the running
 * agent's events (GET /v1/events). Without --follow it prints the events the
 * agent still holds and exits; with --follow it keeps printing until
 * Ctrl-C (exit 0) or until the agent goes away (exit 4, with the id to
 * resume from). --json prints one object per line: `{ "id", "event" }`, or
 * `{ "gap": { lastEventId, oldestAvailable } }` when events were missed.
 */
import { defineCommand } from "citty";
import type { AgentEvent } from "../../agent/events.ts";
import { ControlClient, type EventStreamItem } from "../../control/client.ts";
import { ControlError } from "../../control/errors.ts";
import { printErr, printText, UsageError } from "../output.ts";
import { agentArgs, loadAgentConfig } from "./session.ts";

/** `at  type  key=value …`: one line per event, values JSON-encoded unless they are plain words. */
export function renderEventLine(e: AgentEvent): string {
  const { type, at, ...rest } = e;
  const fields = Object.entries(rest).map(([k, v]) => {
    const text = typeof v === "string" && /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
    return `${k}=${text}`;
  });
  return [at, type, ...fields].join("  ");
}

function renderItem(item: EventStreamItem, json: boolean): void {
  if (item.kind === "gap") {
    const { lastEventId, oldestAvailable } = item;
    if (json) printText(JSON.stringify({ gap: { lastEventId, oldestAvailable } }));
    else
      printErr(
        `warning: events after ${lastEventId ?? "?"} are no longer held by the agent; some were missed (oldest held: ${oldestAvailable ?? "none"})`,
      );
    return;
  }
  printText(json ? JSON.stringify({ id: item.id, event: item.event }) : renderEventLine(item.event));
}

const parseCount = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^\d{1,16}$/.test(v)) throw new UsageError("CLI_USAGE", `--${name} must be a non-negative integer`);
  return Number(v);
};

export default defineCommand({
  meta: {
    name: "events",
    description:
      "Print the running agent's events (updates, rejections, rollbacks, alerts, detections, restarts)",
  },
  args: {
    ...agentArgs,
    follow: {
      type: "boolean",
      alias: "f",
      default: false,
      description: "keep printing new events until Ctrl-C",
    },
    tail: { type: "string", valueHint: "N", description: "start with only the last N held events" },
    since: {
      type: "string",
      valueHint: "ID",
      description: "resume after event ID (from a previous --json line); warns if some were missed",
    },
  },
  async run({ args }) {
    const tail = parseCount("tail", args.tail);
    const since = parseCount("since", args.since);
    const config = loadAgentConfig(args);
    // Events live in the running agent's memory: no offline fallback (CTL_NOT_RUNNING → exit 4).
    const client = await ControlClient.fromStateDir(config.stateDir);
    const abort = new AbortController();
    const stop = () => abort.abort();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    let lastId = since;
    let broken = false;
    try {
      for await (const item of client.events({
        follow: args.follow,
        tail,
        lastEventId: since,
        signal: abort.signal,
      })) {
        renderItem(item, args.json);
        if (item.kind === "event") lastId = item.id;
      }
    } catch (e) {
      if ((e as ControlError).code !== "CTL_STREAM_CLOSED") throw e;
      broken = true;
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
    // Ending is normal without --follow; with it, only Ctrl-C ends it normally.
    if ((broken || args.follow) && !abort.signal.aborted) {
      throw new ControlError(
        "CTL_NOT_RUNNING",
        `the agent closed the event stream (stopping?)${lastId !== undefined ? `; resume with --since ${lastId}` : ""}`,
      );
    }
  },
});
