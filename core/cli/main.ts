/**
 * The entry points' main loop. citty's own `runMain` exits 1 on every
 * failure; Outpost's exit codes carry meaning (docs/cli.md), so this runs
 * the command tree with citty's `runCommand` and maps errors through
 * `exitCodeFor`.
 */
import { type CommandDef, renderUsage, runCommand } from "citty";
import { isTerminal } from "../stdio.ts";
import { EXIT, isCittyUsageError } from "./exit-codes.ts";
import { printErr, printText, reportError, stripAnsi } from "./output.ts";

// biome-ignore lint/suspicious/noExplicitAny: command trees mix argument shapes
type AnyCommand = CommandDef<any>;

const resolve = async <T>(v: T | Promise<T> | (() => T | Promise<T>)): Promise<T> =>
  typeof v === "function" ? await (v as () => T | Promise<T>)() : await v;

/** Follows positional words down the subcommand tree, for help and usage messages. */
export async function resolveCommand(
  cmd: AnyCommand,
  rawArgs: string[],
  parent?: AnyCommand,
): Promise<[AnyCommand, AnyCommand | undefined]> {
  const subCommands = cmd.subCommands ? await resolve(cmd.subCommands) : undefined;
  const index = rawArgs.findIndex((a) => !a.startsWith("-"));
  const name = index >= 0 ? rawArgs[index] : undefined;
  if (subCommands && name && name in subCommands) {
    const sub = await resolve(subCommands[name] as AnyCommand);
    return resolveCommand(sub, rawArgs.slice(index + 1), cmd);
  }
  return [cmd, parent];
}

export interface RunCliOptions {
  /** The line `--version` prints, e.g. "outpost-agent 0.1.0 (abc1234)". */
  version: string;
  rawArgs?: string[];
}

/** Runs a command tree and returns the exit code (does not exit). */
export async function runCliCode(main: AnyCommand, opts: RunCliOptions): Promise<number> {
  const rawArgs = opts.rawArgs ?? process.argv.slice(2);
  const beforeDashDash = rawArgs.includes("--") ? rawArgs.slice(0, rawArgs.indexOf("--")) : rawArgs;
  const json = beforeDashDash.includes("--json");
  try {
    if (rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-v")) {
      printText(opts.version);
      return EXIT.OK;
    }
    if (rawArgs.length === 0 || beforeDashDash.some((a) => a === "--help" || a === "-h")) {
      const [cmd, parent] = await resolveCommand(main, rawArgs);
      printText(usageFor(await renderUsage(cmd, parent), 1));
      return rawArgs.length === 0 ? EXIT.USAGE : EXIT.OK;
    }
    const exitBefore = process.exitCode;
    process.exitCode = 0;
    await runCommand(main, { rawArgs });
    // Commands that succeed with a meaning (found something, cycle rejected content) set process.exitCode.
    const code = Number(process.exitCode ?? 0);
    process.exitCode = exitBefore;
    return code;
  } catch (e) {
    if (isCittyUsageError(e) && !json) {
      const [cmd, parent] = await resolveCommand(main, rawArgs).catch(() => [main, undefined] as const);
      printErr(usageFor(await renderUsage(cmd, parent).catch(() => ""), 2));
    }
    return reportError(e, { json });
  }
}

// citty colours usage whenever NO_COLOR is unset; a pipe or a file should get plain text.
const usageFor = (text: string, fd: 1 | 2): string => (isTerminal(fd) ? text : stripAnsi(text));

/** Runs a command tree and exits with the mapped code (output is already written: core/stdio.ts). */
export async function runCli(main: AnyCommand, opts: RunCliOptions): Promise<never> {
  const code = await runCliCode(main, opts);
  process.exit(code);
}
