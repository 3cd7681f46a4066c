/**
 * The command line of a host process (`agent host --group NAME
 * [--max-inbound N] [--max-outbound N]`) and its start, without the CLI:
 * a host is started by the supervisor only, and every module it evaluates
 * stays in its heap for its whole life, ten or so times over (issue 21,
 * Footprint). bin/agent.ts sends `host` here before loading the command
 * tree; core/cli/agent/host.ts (contentctl's `host`, and help) uses the
 * same parsing.
 */

import type { HandlerRegistry } from "../handler/registry.ts";
import { isTerminal } from "../stdio.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "./frame.ts";

export interface HostArgs {
  group: string;
  maxInboundBytes: number;
  maxOutboundBytes: number;
}

/** A usage problem, as `CLI_USAGE` (exit 2). */
export class HostUsageError extends Error {
  readonly code = "CLI_USAGE";
}

function bytes(v: string | undefined, name: string): number {
  if (v === undefined) return DEFAULT_MAX_MESSAGE_BYTES;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1024) throw new HostUsageError(`--${name} must be a byte count`);
  return n;
}

/** Checks the values the flags carried (strings or absent). */
export function hostArgs(flags: { group?: string; maxInbound?: string; maxOutbound?: string }): HostArgs {
  if (!flags.group) throw new HostUsageError("--group is required");
  if (isTerminal(0)) throw new HostUsageError("agent host is started by the agent, not by hand");
  return {
    group: flags.group,
    maxInboundBytes: bytes(flags.maxInbound, "max-inbound"),
    maxOutboundBytes: bytes(flags.maxOutbound, "max-outbound"),
  };
}

/** Parses `host …` argv (the words after `host`), `--flag value` and `--flag=value` alike. */
export function parseHostArgv(argv: string[]): HostArgs {
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--(group|max-inbound|max-outbound)(?:=(.*))?$/.exec(a);
    if (!m) throw new HostUsageError(`unknown argument ${a}`);
    const v = m[2] ?? argv[++i];
    if (v === undefined) throw new HostUsageError(`--${m[1]} needs a value`);
    flags[m[1]!] = v;
  }
  return hostArgs({
    group: flags.group,
    maxInbound: flags["max-inbound"],
    maxOutbound: flags["max-outbound"],
  });
}

/** Runs the host: its group's handlers, and every built-in one for a handler the group's table lacks. */
export async function runHost(
  args: HostArgs,
  registries: { group(name: string): Promise<HandlerRegistry>; all(): Promise<HandlerRegistry> },
): Promise<void> {
  const [{ runHostChild }, builtins] = await Promise.all([
    import("./child.ts"),
    registries.group(args.group),
  ]);
  await runHostChild({
    group: args.group,
    builtins,
    allBuiltins: () => registries.all(),
    maxInboundBytes: args.maxInboundBytes,
    maxOutboundBytes: args.maxOutboundBytes,
  });
}
