/**
 * osquery result-log lines → the row shape stores keep (name,
 * hostIdentifier, calendarTime, unixTime, epoch, counter, action, columns,
 * decorations), with text made storable everywhere.
 *
 * Replacement rule (docs/sinks.md, "Text that stores refuse"): U+0000 —
 * which PostgreSQL's jsonb and text refuse — and lone UTF-16 surrogates —
 * what invalid UTF-8 in a source becomes, and which no UTF-8 store accepts
 * — are each replaced by U+FFFD, in keys and values alike, and counted, so
 * a row is stored (never dropped) and the loss of those characters shows in
 * the sink's stats (`replacedChars`).
 */

export interface ResultRow {
  name: string;
  hostIdentifier: string;
  calendarTime: string;
  unixTime: number;
  epoch: number;
  counter: number;
  action: string;
  columns: unknown;
  decorations: unknown;
}

const BAD = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Replaces U+0000 and lone surrogates by U+FFFD; `count.n` grows by the number replaced. */
export function cleanText(s: string, count: { n: number }): string {
  if (!BAD.test(s)) return s;
  BAD.lastIndex = 0;
  return s.replace(BAD, () => {
    count.n++;
    return "\ufffd";
  });
}

function cleanValue(v: unknown, count: { n: number }): unknown {
  if (typeof v === "string") return cleanText(v, count);
  if (Array.isArray(v)) return v.map((x) => cleanValue(x, count));
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[cleanText(k, count)] = cleanValue(x, count);
    return out;
  }
  return v;
}

const num = (v: unknown): number => {
  const n = typeof v === "number" ? v : Number(v);
  return Number.isFinite(n) ? Math.trunc(n) : 0;
};

/**
 * One result line as a row. Event-format lines carry `columns`; snapshot and
 * diff lines carry `snapshot` / `diffResults`, kept whole in `columns`.
 * Returns null for a line that is not a JSON object (the queue only holds
 * what the query host wrote, so that is a bug upstream; the caller rejects).
 */
export function toRow(line: string, count: { n: number }): ResultRow | null {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return null;
  }
  if (!o || typeof o !== "object" || Array.isArray(o)) return null;
  const r = o as Record<string, unknown>;
  const text = (v: unknown) => cleanText(typeof v === "string" ? v : v == null ? "" : String(v), count);
  return {
    name: text(r.name),
    hostIdentifier: text(r.hostIdentifier),
    calendarTime: text(r.calendarTime),
    unixTime: num(r.unixTime),
    epoch: num(r.epoch),
    counter: num(r.counter),
    action: text(r.action ?? (r.snapshot ? "snapshot" : r.diffResults ? "diff" : "")),
    columns: cleanValue(r.columns ?? r.snapshot ?? r.diffResults ?? {}, count),
    decorations: cleanValue(r.decorations ?? {}, count),
  };
}
