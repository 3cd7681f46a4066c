/**
 * `contentctl hmpa-build --in thumbprints.txt --out allowlist.bin`: the vendor
 * side. Lives with the handler, not in core/cli, because the core knows no
 * content types; the lead wires it into bin/contentctl.ts.
 */
import { readFileSync } from "node:fs";
import { defineCommand } from "citty";
import { printJson, printText } from "../../core/cli/output.ts";
import { atomicWriteFile } from "../../core/fsutil.ts";
import { parseThumbprintText } from "./build.ts";
import { Allowlist } from "./reader.ts";
import { buildAllowlist } from "./writer.ts";

export interface HmpaBuildSummary {
  in: string;
  out: string;
  thumbprints: number;
  entries: number;
  /** Input thumbprints that collapsed into an existing entry (same normalised text, or same stored bits). */
  collapsed: number;
  bytes: number;
  bytesPerEntry: number;
  bucketBits: number;
  falsePositiveBound: number;
  sha256: string;
}

export default defineCommand({
  meta: { name: "hmpa-build", description: "Build a Hmpa_data allowlist.bin from a thumbprint text file" },
  args: {
    in: { type: "string", required: true, description: "text file: one thumbprint per line, # comments" },
    out: { type: "string", required: true, description: "allowlist.bin to write (atomically)" },
    json: { type: "boolean", default: false, description: "print the summary as JSON" },
  },
  run({ args }): HmpaBuildSummary {
    const thumbprints = parseThumbprintText(readFileSync(args.in, "utf8"), { file: args.in });
    const bytes = buildAllowlist(thumbprints);
    atomicWriteFile(args.out, bytes);
    const allowlist = Allowlist.from(bytes, { file: args.out });
    const summary: HmpaBuildSummary = {
      in: args.in,
      out: args.out,
      thumbprints: thumbprints.length,
      entries: allowlist.size,
      collapsed: thumbprints.length - allowlist.size,
      bytes: bytes.length,
      bytesPerEntry: Math.round(allowlist.bytesPerEntry * 1000) / 1000,
      bucketBits: allowlist.bucketBits,
      falsePositiveBound: allowlist.falsePositiveBound,
      sha256: new Bun.CryptoHasher("sha256").update(bytes).digest("hex"),
    };
    if (args.json) {
      printJson(summary);
    } else {
      printText(
        `wrote ${summary.out}: ${summary.entries} entries from ${summary.thumbprints} thumbprints ` +
          `(${summary.collapsed} collapsed), ${summary.bytes} bytes, ${summary.bytesPerEntry} bytes/entry, ` +
          `sha256 ${summary.sha256}`,
      );
    }
    return summary;
  },
});
