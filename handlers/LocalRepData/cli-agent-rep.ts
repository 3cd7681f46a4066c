/**
 * `agent rep SHA256|FILE [--signer CERT_SHA256] [--json]`: what LocalRepData
 * says about a file — by its SHA-256, or by a file's contents (hashed here)
 * — and optionally its signer. Exit 0 whatever the answer ("unknown" is an
 * answer); errors (no content, agent unreachable) still fail.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { defineCommand } from "citty";
import { printJson, printText, UsageError } from "../../core/cli/output.ts";
import type { RepAnswer } from "./index.ts";

export type CallHandler = (type: string, method: string, args: unknown) => Promise<unknown>;

const HEX64 = /^[0-9a-fA-F]{64}$/;

export function renderAnswer(a: RepAnswer): string {
  const who = a.sha256 ?? a.signer ?? "";
  if (!a.source) return `${who}: unknown (not in LocalRepData)`;
  const by = a.source === "signer" ? ` by signer${a.signerName ? ` "${a.signerName}"` : ""}` : " by hash";
  return `${who}: ${a.band} reputation (score ${a.score}, ${a.class})${by}`;
}

export function makeRepCommand(callHandler: CallHandler) {
  return defineCommand({
    meta: { name: "rep", description: "Reputation of a file (SHA-256 or path) from LocalRepData" },
    args: {
      target: { type: "positional", required: true, description: "SHA-256 hex digest, or a file to hash" },
      signer: { type: "string", valueHint: "CERT_SHA256", description: "also consult the signer list" },
      json: { type: "boolean", default: false, description: "print the answer as JSON" },
    },
    async run({ args }): Promise<RepAnswer> {
      let sha256 = args.target;
      if (!HEX64.test(sha256)) {
        let data: Buffer;
        try {
          data = readFileSync(args.target);
        } catch (e) {
          throw new UsageError(
            "CLI_USAGE",
            `${args.target}: neither a SHA-256 digest nor a readable file (${(e as Error).message})`,
          );
        }
        sha256 = createHash("sha256").update(data).digest("hex");
      }
      if (args.signer !== undefined && !HEX64.test(args.signer)) {
        throw new UsageError(
          "CLI_USAGE",
          "--signer takes the SHA-256 of the signer certificate (64 hex digits)",
        );
      }
      const answer = (await callHandler("LocalRepData", "lookup", {
        sha256: sha256.toLowerCase(),
        ...(args.signer ? { signer: args.signer.toLowerCase() } : {}),
      })) as RepAnswer;
      if (args.json) printJson(answer);
      else printText(renderAnswer(answer));
      return answer;
    },
  });
}
