/**
 * A sink's queue directory on disk: one file per queued batch (gzip'd JSON
 * lines, named by order, generation and seqs) and `cursor.json` (the seqs
 * the destination confirmed, lifetime totals, the drop episode under way).
 * The directory is the queue: memory holds only these few fields per batch.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { log } from "../../core/log.ts";

export interface QueuedBody {
  file: string;
  order: number;
  generation: string;
  first: number;
  last: number;
  bytes: number;
}

export interface Cursor {
  /** generation → highest seq confirmed by the destination. */
  delivered: Record<string, number>;
  /** Lifetime totals of this queue (survive restarts; what `agent query --stats` reads). */
  totals?: { sent: number; dropped: number };
  sink?: string;
  kind?: string;
  /** The drop episode under way: from the first drop until the queue is empty again. */
  dropEpisode?: { since: string; dropped: number };
}

/** The lifetime totals a queue directory records (undefined: no queue there). */
export function queueTotals(
  dir: string,
): { sink: string; kind: string; sent: number; dropped: number; queued: number } | undefined {
  try {
    const c = JSON.parse(readFileSync(join(dir, "cursor.json"), "utf8")) as Cursor;
    // Lines still waiting, counted as the sink counts them when it opens the queue (read only here).
    let queued = 0;
    for (const name of readdirSync(dir)) {
      const m = BODY.exec(name);
      if (m && Number(m[4]) > (c.delivered?.[m[2]!] ?? 0)) queued += Number(m[4]) - Number(m[3]) + 1;
    }
    return {
      sink: c.sink ?? dir,
      kind: c.kind ?? "",
      sent: c.totals?.sent ?? 0,
      dropped: c.totals?.dropped ?? 0,
      queued,
    };
  } catch {
    return undefined;
  }
}

/** A body file: `<order>_<generation>_<first>_<last>.ndjson[.gz]`. */
const BODY = /^(\d{12})_([A-Za-z0-9-]{1,64})_(\d{16})_(\d{16})\.ndjson(\.gz)?$/;

/** The body file name of a batch. */
export function bodyFileName(
  order: number,
  generation: string,
  first: number,
  last: number,
  gzip: boolean,
): string {
  return `${String(order).padStart(12, "0")}_${generation}_${String(first).padStart(16, "0")}_${String(last).padStart(16, "0")}.ndjson${gzip ? ".gz" : ""}`;
}

/**
 * Opens (creating) a queue directory: its cursor, and the bodies still to deliver in order. Bodies
 * the cursor shows delivered (a crash between the cursor save and the delete) and temp files of an
 * interrupted write are removed.
 */
export function openQueueDir(dir: string): { cursor: Cursor; bodies: QueuedBody[] } {
  mkdirSync(join(dir, "rejected"), { recursive: true, mode: 0o700 });
  const cursorPath = join(dir, "cursor.json");
  let cursor: Cursor = { delivered: {} };
  try {
    if (existsSync(cursorPath)) cursor = JSON.parse(readFileSync(cursorPath, "utf8")) as Cursor;
  } catch (e) {
    // Without the cursor a delivered body may be sent again; the destination's idempotency keys absorb it.
    log.warn("results queue cursor unreadable; starting without it", {
      file: cursorPath,
      reason: (e as Error).message,
    });
  }
  const bodies: QueuedBody[] = [];
  for (const name of readdirSync(dir).sort()) {
    const m = BODY.exec(name);
    if (!m) {
      if (name.endsWith(".tmp")) rmSync(join(dir, name), { force: true });
      continue;
    }
    const body: QueuedBody = {
      file: join(dir, name),
      order: Number(m[1]),
      generation: m[2]!,
      first: Number(m[3]),
      last: Number(m[4]),
      bytes: statSync(join(dir, name)).size,
    };
    if (body.last <= (cursor.delivered[body.generation] ?? 0)) rmSync(body.file, { force: true });
    else bodies.push(body);
  }
  return { cursor, bodies };
}
