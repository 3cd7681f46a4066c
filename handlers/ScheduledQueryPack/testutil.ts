/** Test helpers: a ContentView over in-memory files, and capabilities that record events. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCapabilities } from "../../core/handler/capabilities.ts";
import { type ContentHandler, type ContentView, viewOverBytes } from "../../core/handler/contract.ts";

export function viewOf(files: Record<string, string>, version = 1): ContentView {
  return viewOverBytes({
    type: "ScheduledQueryPack",
    version,
    signingTime: new Date(0).toISOString(),
    files: Object.keys(files),
    read: (p) => new TextEncoder().encode(files[p] ?? ""),
    readText: (p) => {
      const t = files[p];
      if (t === undefined) throw new Error(`${p}: not in the payload`);
      return t;
    },
  });
}

export interface RecordedEvent {
  type: string;
  [k: string]: unknown;
}

export function capsFor(
  handler: ContentHandler<unknown>,
  workDir = mkdtempSync(join(tmpdir(), "outpost-sqp-")),
) {
  const events: RecordedEvent[] = [];
  const caps = createCapabilities(handler.manifest, {
    log: { info: () => {}, warn: () => {} },
    emit: (type, fields) => events.push({ type, ...fields }),
    workDir,
  });
  return { caps, events, workDir };
}

/** A pack file body. */
export function pack(
  queries: Record<string, Record<string, unknown>>,
  extra: Record<string, unknown> = {},
): string {
  return JSON.stringify({ ...extra, queries });
}
