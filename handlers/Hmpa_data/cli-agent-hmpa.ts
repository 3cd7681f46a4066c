/**
 * `agent hmpa check THUMBPRINT [--json]`: asks the running agent (through the
 * injected `callHandler`, i.e. AgentApi.call over the control plane or
 * in-process) whether a thumbprint is allowlisted. Prints `allowed` or
 * `not allowed` and exits 0 either way: "not allowed" is an answer, not a
 * failure; errors (no content loaded, agent unreachable) still throw.
 */
import { defineCommand } from "citty";
import { printJson, printText } from "../../core/cli/output.ts";
import { HandlerError } from "../../core/errors.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";

export type CallHandler = (type: string, method: string, args: unknown) => Promise<unknown>;

const CheckResultSchema = lazySchema(() => z.object({ thumbprint: z.string(), allowed: z.boolean() }));
export type HmpaCheckResult = z.infer<typeof CheckResultSchema>;

export function makeHmpaCommand(callHandler: CallHandler) {
  const check = defineCommand({
    meta: { name: "check", description: "Is a HitmanPro.Alert thumbprint on the global allowlist?" },
    args: {
      thumbprint: { type: "positional", required: true, description: 'e.g. "StackPivot:3f9a…"' },
      json: { type: "boolean", default: false, description: "print the result as JSON" },
    },
    async run({ args }): Promise<HmpaCheckResult> {
      const raw = await callHandler("Hmpa_data", "check", { thumbprint: args.thumbprint });
      const parsed = CheckResultSchema.safeParse(raw);
      if (!parsed.success) {
        throw new HandlerError("HND_HMPA_BAD_RESULT", `Hmpa_data check returned an unexpected result`, {
          details: { result: raw },
        });
      }
      if (args.json) printJson(parsed.data);
      else printText(parsed.data.allowed ? "allowed" : "not allowed");
      return parsed.data;
    },
  });
  return defineCommand({
    meta: { name: "hmpa", description: "HitmanPro.Alert thumbprint allowlist (Hmpa_data)" },
    subCommands: { check },
  });
}
