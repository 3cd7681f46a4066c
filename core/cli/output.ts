/**
 * What every CLI command shares: results on stdout (tables for people, JSON
 * for scripts), errors as `error CODE: message` on stderr, and one mapping
 * from error to exit code so `$?` means the same thing for every command
 * (the table is exit-codes.ts; docs/cli.md is generated from it).
 */
import { OutpostError } from "../errors.ts";
import { type ExitCode, exitCodeFor, isCittyUsageError } from "./exit-codes.ts";

/** Wrong or missing arguments detected by a command itself. Codes: CLI_* */
export class UsageError extends OutpostError {}

const pending = new Set<Promise<void>>();

/**
 * Writes without blocking, but remembers the write: `process.exit` would
 * otherwise cut a large output short on a pipe (see flushOutput).
 */
function write(stream: NodeJS.WriteStream, text: string): void {
  const done = new Promise<void>((resolve) => {
    stream.write(text, () => resolve());
  });
  pending.add(done);
  done.then(() => pending.delete(done));
}

export function printText(text: string): void {
  write(process.stdout, text.endsWith("\n") ? text : `${text}\n`);
}

export function printErr(text: string): void {
  write(process.stderr, text.endsWith("\n") ? text : `${text}\n`);
}

export function printJson(value: unknown): void {
  write(process.stdout, `${JSON.stringify(value, null, 2)}\n`);
}

const TRACKED = Symbol.for("outpost.cli.trackedWrites");

/**
 * Makes every write to stdout/stderr — including ones commands make
 * directly — count for flushOutput. Installed by the CLI main loop, which
 * ends with process.exit.
 */
export function trackStdWrites(): void {
  for (const stream of [process.stdout, process.stderr]) {
    const marked = stream as NodeJS.WriteStream & { [TRACKED]?: true };
    if (marked[TRACKED]) continue;
    marked[TRACKED] = true;
    const original = stream.write.bind(stream) as (
      chunk: unknown,
      encoding?: unknown,
      cb?: (err?: Error | null) => void,
    ) => boolean;
    stream.write = ((chunk: unknown, encodingOrCb?: unknown, maybeCb?: unknown) => {
      const cb = (typeof encodingOrCb === "function" ? encodingOrCb : maybeCb) as
        | ((err?: Error | null) => void)
        | undefined;
      const encoding = typeof encodingOrCb === "function" ? undefined : encodingOrCb;
      let settle!: () => void;
      const done = new Promise<void>((resolve) => {
        settle = resolve;
      });
      pending.add(done);
      done.then(() => pending.delete(done));
      return original(chunk, encoding, (err) => {
        settle();
        cb?.(err);
      });
    }) as typeof stream.write;
  }
}

/** Resolves once everything printed so far has reached the OS. */
export async function flushOutput(): Promise<void> {
  while (pending.size > 0) await Promise.all([...pending]);
}

export type Cell = string | number | boolean | null | undefined;

/** Left-aligned columns separated by two spaces; empty cells render as "-". */
export function renderTable(headers: string[], rows: Cell[][]): string {
  const cells = [headers, ...rows.map((r) => headers.map((_, i) => cellText(r[i])))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

function cellText(c: Cell): string {
  if (c === null || c === undefined || c === "") return "-";
  return String(c);
}

/** Key/value block for headers above tables ("health   green"). */
export function renderFields(fields: [string, Cell][]): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${k.padEnd(width)}  ${cellText(v)}`).join("\n");
}

export function errorObject(e: unknown): { error: { code: string; message: string; file?: string } } {
  if (e instanceof OutpostError) {
    return { error: { code: e.code, message: e.message, ...(e.file ? { file: e.file } : {}) } };
  }
  if (isCittyUsageError(e)) return { error: { code: "CLI_USAGE", message: stripAnsi((e as Error).message) } };
  const errno = (e as NodeJS.ErrnoException | null)?.code;
  const message = e instanceof Error ? e.message : String(e);
  return { error: { code: typeof errno === "string" ? errno : "INTERNAL", message } };
}

/**
 * Prints an error the way every command does and returns its exit code.
 * With --json the error object goes to stdout, where the script is already
 * reading; otherwise one line on stderr.
 */
export function reportError(e: unknown, opts: { json: boolean }): ExitCode {
  const { error } = errorObject(e);
  if (opts.json) printJson({ error });
  else printErr(`error ${error.code}: ${error.message}`);
  if (process.env.OUTPOST_DEBUG === "1" && e instanceof Error && e.stack) printErr(e.stack);
  return exitCodeFor(e);
}

export function stripAnsi(s: string): string {
  return s.replace(/\u001b\[[0-9;]*m/g, "");
}
