/**
 * What every CLI command shares: results on stdout (tables for people, JSON
 * for scripts), errors as `error CODE: message` on stderr, and one mapping
 * from error to exit code so `$?` means the same thing for every command
 * (the table is exit-codes.ts; docs/cli.md is generated from it). Output is
 * written synchronously to the descriptors (core/stdio.ts), so a command
 * that exits right after printing never cuts piped JSON short.
 */
import { OutpostError } from "../errors.ts";
import { writeStderr, writeStdout } from "../stdio.ts";
import { type ExitCode, exitCodeFor, isCittyUsageError } from "./exit-codes.ts";

/** Wrong or missing arguments detected by a command itself. Codes: CLI_* */
export class UsageError extends OutpostError {}

export function printText(text: string): void {
  writeStdout(text.endsWith("\n") ? text : `${text}\n`);
}

export function printErr(text: string): void {
  writeStderr(text.endsWith("\n") ? text : `${text}\n`);
}

export function printJson(value: unknown): void {
  writeStdout(`${JSON.stringify(value, null, 2)}\n`);
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
