/**
 * Exit codes: the one table. `$?` means the same thing for every command of
 * both binaries; docs/cli.md ("Exit codes") and the exit column of
 * docs/error-codes.md are generated from this file by
 * `bun scripts/error-codes.ts`, and test/error-codes.test.ts fails when
 * either document or a pinned mapping drifts.
 *
 * An error code maps by the first rule in EXIT_RULES that matches it;
 * anything else is INTERNAL. Errors that are not Outpost errors map by
 * NON_OUTPOST_RULES (usage errors from the argument parser, a path the user
 * named that cannot be read).
 */
import { OutpostError } from "../errors.ts";

export const EXIT = {
  OK: 0,
  /** A scan or check found something; reserved for detection commands. */
  FOUND: 1,
  USAGE: 2,
  /** An update failed, content was rejected, or a content operation (rollback) was refused. */
  CONTENT: 3,
  /** The action needs the running agent and it cannot be reached. */
  UNREACHABLE: 4,
  INTERNAL: 5,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** What each exit code means, as docs/cli.md states it. */
export const EXIT_MEANING: Readonly<Record<ExitCode, string>> = {
  0: "Success.",
  1: "A scan or check *found something* (`agent scan` with a detection that stands).",
  2: "Usage or configuration error: unknown command or flag, missing argument, invalid or missing config file, a path given on the command line that does not exist or cannot be read.",
  3: "An update failed or content was rejected, an update cycle finished with `ok: false`, a content operation was refused, a handler has no usable content, or a release step was refused.",
  4: "The running agent is needed and cannot be reached; also when the agent goes away during `agent events --follow`.",
  5: "Internal error: anything no rule in this table names. Set `OUTPOST_DEBUG=1` for a stack trace.",
};

export interface ExitRule {
  /** Error codes matched exactly, or a pattern over the code. */
  match: readonly string[] | RegExp;
  exit: ExitCode;
  /** Why, in the words docs/cli.md prints. */
  why: string;
}

/** First match wins. Order matters: exact codes before their family's pattern. */
export const EXIT_RULES: readonly ExitRule[] = [
  {
    match: ["CTL_NOT_RUNNING", "CTL_NO_ACCESS", "AGENT_LOCKED"],
    exit: EXIT.UNREACHABLE,
    why: "no agent answers (no `control.json`, dead pid, nothing listening), the token cannot be read, or another agent owns the state dir but does not answer",
  },
  { match: /^CLI_/, exit: EXIT.USAGE, why: "the command line itself is wrong" },
  { match: /^CFG_/, exit: EXIT.USAGE, why: "configuration, keys or trust store missing or invalid" },
  {
    match: ["HND_UNKNOWN_TYPE", "HND_UNKNOWN_METHOD", "HND_NO_API"],
    exit: EXIT.USAGE,
    why: "an unknown content type or handler method was named",
  },
  {
    match: ["INST_NOT_ROOT", "INST_INPUT", "INST_NO_TRUST", "INST_CONFIG", "INST_BINARY"],
    exit: EXIT.USAGE,
    why: "`agent install` was not run as root, or a file it needs is missing or invalid",
  },
  {
    match: ["INST_SOFTWARE_BAD"],
    exit: EXIT.CONTENT,
    why: "an agent build that failed its health check before was refused",
  },
  { match: /^HND_\w*BAD_ARGS$/, exit: EXIT.USAGE, why: "a handler rejected its arguments" },
  {
    match: /^(UPD|IDX|SIG|PKG|STORE|HND|REL|POL|FLAG|CRT)_/,
    exit: EXIT.CONTENT,
    why: "update, index, signature, package, store, handler, release, policy, flags and CRT rule refusals",
  },
];

/** Errors from outside Outpost: the argument parser's usage errors, and unreadable paths the user named. */
export const NON_OUTPOST_RULES: readonly { what: string; exit: ExitCode }[] = [
  { what: "the argument parser's usage error (citty `CLIError`)", exit: EXIT.USAGE },
  { what: "a path the user named: `ENOENT`, `ENOTDIR`, `EISDIR`, `EACCES`, `EPERM`", exit: EXIT.USAGE },
  { what: "anything else thrown", exit: EXIT.INTERNAL },
];

const USER_PATH_ERRNO = new Set(["ENOENT", "ENOTDIR", "EISDIR", "EACCES", "EPERM"]);

export function isCittyUsageError(e: unknown): boolean {
  // citty does not export CLIError; its name is the stable part of it.
  return e instanceof Error && e.name === "CLIError";
}

/** The exit code of an error code, by EXIT_RULES. */
export function exitCodeForCode(code: string): ExitCode {
  for (const r of EXIT_RULES) {
    if (Array.isArray(r.match) ? r.match.includes(code) : (r.match as RegExp).test(code)) return r.exit;
  }
  return EXIT.INTERNAL;
}

export function exitCodeFor(e: unknown): ExitCode {
  if (isCittyUsageError(e)) return NON_OUTPOST_RULES[0]!.exit;
  if (!(e instanceof OutpostError)) {
    const errno = (e as NodeJS.ErrnoException | null)?.code;
    return typeof errno === "string" && USER_PATH_ERRNO.has(errno)
      ? NON_OUTPOST_RULES[1]!.exit
      : NON_OUTPOST_RULES[2]!.exit;
  }
  return exitCodeForCode(e.code);
}
