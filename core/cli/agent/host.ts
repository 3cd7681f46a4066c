/**
 * `agent host --group NAME` (internal, hidden from help): one host group's
 * process. Only the agent starts it, through the sandbox wrappers
 * (core/host/manager.ts); it speaks the frame protocol on stdin/stdout and
 * exits when its stdin closes. See docs/handler-host.md.
 */
import { defineCommand } from "citty";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../../host/frame.ts";
import { UsageError } from "../output.ts";
import { wiredRegistry } from "./wiring.ts";

const bytes = (v: string | undefined, name: string): number => {
  if (v === undefined) return DEFAULT_MAX_MESSAGE_BYTES;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1024) throw new UsageError("CLI_USAGE", `--${name} must be a byte count`);
  return n;
};

export default defineCommand({
  meta: {
    name: "host",
    description: "internal: run one handler group's host process (started by the agent)",
    hidden: true,
  },
  args: {
    group: { type: "string", required: true, description: "host group to run" },
    "max-inbound": { type: "string", description: "largest frame accepted from the supervisor" },
    "max-outbound": { type: "string", description: "largest frame sent to the supervisor" },
  },
  async run({ args }) {
    if (process.stdin.isTTY) {
      throw new UsageError("CLI_USAGE", "agent host is started by the agent, not by hand");
    }
    const [{ runHostChild }, builtins] = await Promise.all([
      import("../../host/child.ts"),
      wiredRegistry(args.group),
    ]);
    await runHostChild({
      group: args.group,
      builtins,
      // A built-in handler missing from the group's table is still found, at the cost of loading them all.
      allBuiltins: () => wiredRegistry(),
      maxInboundBytes: bytes(args["max-inbound"], "max-inbound"),
      maxOutboundBytes: bytes(args["max-outbound"], "max-outbound"),
    });
  },
});
