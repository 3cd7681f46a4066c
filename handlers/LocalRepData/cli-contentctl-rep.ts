/**
 * `contentctl rep build --out reputation.bin [--hashes FILE]… [--signers FILE]… [--from-dir DIR --score N]`:
 * builds a LocalRepData file (then `contentctl pack --type LocalRepData`).
 *
 *   hashes file:   <sha256> <score 0-100> [class]            one per line, # comments
 *   signers file:  <cert sha256> <score 0-100> <class> <name…>
 *   --from-dir:    every regular file under DIR, hashed, with --score and --class
 *                  (how a vendor allowlists an OS image's files)
 *
 * Later lines override earlier ones for the same key.
 */
import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { printJson, printText } from "../../core/cli/output.ts";
import { ConfigError } from "../../core/errors.ts";
import { atomicWriteFile } from "../../core/fsutil.ts";
import { CLASSES, type ReputationClass } from "./format.ts";
import { buildReputation, type RepEntryInput, tableFromEntries } from "./writer.ts";

function parseLines(text: string, file: string, signers: boolean): RepEntryInput[] {
  const out: RepEntryInput[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) return;
    const [sha256, score, cls, ...name] = line.split(/\s+/);
    const where = `${file}:${i + 1}`;
    if (!sha256 || !/^[0-9a-fA-F]{64}$/.test(sha256))
      throw new ConfigError("CFG_INVALID", `${where}: expected a SHA-256 hex digest`, { file });
    if (!score || !/^\d{1,3}$/.test(score) || Number(score) > 100)
      throw new ConfigError("CFG_INVALID", `${where}: score must be 0–100`, { file });
    if (cls !== undefined && !(CLASSES as readonly string[]).includes(cls)) {
      throw new ConfigError("CFG_INVALID", `${where}: class must be one of ${CLASSES.join(", ")}`, { file });
    }
    if (signers && name.length === 0)
      throw new ConfigError("CFG_INVALID", `${where}: a signer line needs a class and a name`, { file });
    if (!signers && name.length > 0)
      throw new ConfigError("CFG_INVALID", `${where}: unexpected text after the class`, { file });
    out.push({
      sha256,
      score: Number(score),
      class: (cls ?? "unspecified") as ReputationClass,
      ...(signers ? { name: name.join(" ") } : {}),
    });
  });
  return out;
}

function hashTree(dir: string, score: number, cls: ReputationClass, out: RepEntryInput[]): void {
  for (const n of readdirSync(dir).sort()) {
    const p = join(dir, n);
    const st = lstatSync(p);
    if (st.isDirectory()) hashTree(p, score, cls, out);
    else if (st.isFile())
      out.push({ sha256: createHash("sha256").update(readFileSync(p)).digest("hex"), score, class: cls });
  }
}

const asList = (v: unknown): string[] =>
  v === undefined ? [] : Array.isArray(v) ? (v as string[]) : [v as string];

const build = defineCommand({
  meta: { name: "build", description: "Build a LocalRepData reputation.bin" },
  args: {
    out: { type: "string", required: true, description: "reputation.bin to write (atomically)" },
    hashes: { type: "string", valueHint: "FILE", description: "lines: <sha256> <score> [class]" },
    signers: {
      type: "string",
      valueHint: "FILE",
      description: "lines: <cert sha256> <score> <class> <name…>",
    },
    "from-dir": { type: "string", valueHint: "DIR", description: "hash every file under DIR" },
    score: { type: "string", default: "90", description: "score for --from-dir files" },
    class: {
      type: "string",
      default: "system",
      description: `class for --from-dir files (${CLASSES.join(", ")})`,
    },
    json: { type: "boolean", default: false, description: "print the summary as JSON" },
  },
  run({ args }) {
    const hashes: RepEntryInput[] = [];
    const signers: RepEntryInput[] = [];
    const fromDir = asList(args["from-dir"]);
    if (fromDir.length) {
      const score = Number(args.score);
      if (!Number.isInteger(score) || score < 0 || score > 100)
        throw new ConfigError("CFG_INVALID_ARGUMENT", "--score must be 0–100");
      if (!(CLASSES as readonly string[]).includes(args.class))
        throw new ConfigError("CFG_INVALID_ARGUMENT", `--class must be one of ${CLASSES.join(", ")}`);
      for (const d of fromDir) hashTree(d, score, args.class as ReputationClass, hashes);
    }
    for (const f of asList(args.hashes)) hashes.push(...parseLines(readFileSync(f, "utf8"), f, false));
    for (const f of asList(args.signers)) signers.push(...parseLines(readFileSync(f, "utf8"), f, true));
    const r = buildReputation(tableFromEntries(hashes, false), tableFromEntries(signers, true));
    atomicWriteFile(args.out, r.bytes);
    const entries = r.hashEntries + r.signerEntries;
    const summary = {
      out: args.out,
      hashEntries: r.hashEntries,
      signerEntries: r.signerEntries,
      overridden: r.overridden,
      bytes: r.bytes.length,
      bytesPerEntry: entries ? Math.round((r.bytes.length / entries) * 100) / 100 : 0,
      sha256: createHash("sha256").update(r.bytes).digest("hex"),
    };
    if (args.json) printJson(summary);
    else
      printText(
        `wrote ${summary.out}: ${summary.hashEntries} file hashes, ${summary.signerEntries} signers (${summary.overridden} overridden), ` +
          `${summary.bytes} bytes, ${summary.bytesPerEntry} bytes/entry`,
      );
    return summary;
  },
});

export default defineCommand({
  meta: { name: "rep", description: "LocalRepData reputation lists" },
  subCommands: { build },
});
