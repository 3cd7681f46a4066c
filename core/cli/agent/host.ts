/**
 * `agent host --group NAME` (internal, hidden from help): one host group's
 * process. Only the agent starts it, through the sandbox wrappers
 * (core/host/manager.ts); it speaks the frame protocol on stdin/stdout and
 * exits when its stdin closes. See docs/handler-host.md. The compiled agent
 * starts it without this command tree (bin/agent.ts → bin/agent-host.ts);
 * this command serves contentctl's validating host and `--help`.
 */
import { defineCommand } from "citty";
import { HostUsageError, hostArgs, runHost } from "../../host/entry.ts";
import { UsageError } from "../output.ts";
import { wiredRegistry } from "./wiring.ts";

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
    let parsed: ReturnType<typeof hostArgs>;
    try {
      parsed = hostArgs({
        group: args.group,
        maxInbound: args["max-inbound"],
        maxOutbound: args["max-outbound"],
      });
    } catch (e) {
      if (e instanceof HostUsageError) throw new UsageError("CLI_USAGE", e.message);
      throw e;
    }
    // A built-in handler missing from the group's table is still found, at the cost of loading them all.
    await runHost(parsed, { group: (g) => wiredRegistry(g), all: () => wiredRegistry() });
  },
});
