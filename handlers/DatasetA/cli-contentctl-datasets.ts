/**
 * `contentctl datasets check|pack`: the vendor side of DatasetA. `check`
 * compiles signature files exactly as the agent will and prints what they
 * hold; `pack` does the same and then signs them as a DatasetA package.
 * Inputs are `.hdb`/`.hsb`/`.ndb` files or directories of them, plus an
 * optional lookup list (`--lookup`, one signature name per line).
 */
import {
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { defineCommand } from "citty";
import { validatePayloadDir } from "../../core/cli/contentctl/validate.ts";
import { printJson, printText } from "../../core/cli/output.ts";
import { sha384Hex } from "../../core/crypto/digest.ts";
import { loadSigningKeys } from "../../core/crypto/keys.ts";
import { ConfigError } from "../../core/errors.ts";
import { atomicWriteFile } from "../../core/fsutil.ts";
import { packDirectory } from "../../core/package/pack.ts";
import { compileSources, type SignatureFile } from "./compiled.ts";
import { Dataset, type DatasetStats } from "./engine.ts";
import { INDEX_FILE, writeIndex } from "./index-file.ts";
import { isSignatureFile, LOOKUP_FILE, unsupportedSignatureFile } from "./signatures.ts";

function collect(
  inputs: string[],
  lookup?: string,
): { files: { from: string; name: string }[]; sources: SignatureFile[] } {
  const files: { from: string; name: string }[] = [];
  const add = (from: string) => {
    const name = basename(from);
    if (files.some((f) => f.name === name)) {
      throw new ConfigError(
        "CFG_INVALID_ARGUMENT",
        `two inputs are named ${name}; payload file names must be unique`,
      );
    }
    files.push({ from, name });
  };
  for (const input of inputs) {
    if (statSync(input).isDirectory()) {
      for (const n of readdirSync(input).sort()) {
        const why = unsupportedSignatureFile(n);
        if (why)
          throw new ConfigError("CFG_INVALID_ARGUMENT", `${join(input, n)}: ${why.slice(n.length + 2)}`);
        if (isSignatureFile(n)) add(join(input, n));
      }
    } else if (isSignatureFile(input)) add(input);
    else throw new ConfigError("CFG_INVALID_ARGUMENT", `${input}: not a .hdb, .hsb or .ndb file`);
  }
  if (lookup) files.push({ from: lookup, name: LOOKUP_FILE });
  if (!files.some((f) => isSignatureFile(f.name)))
    throw new ConfigError("CFG_INVALID_ARGUMENT", "no signature files given");
  return {
    files,
    sources: files.map((f) => ({ path: f.name, bytes: new Uint8Array(readFileSync(f.from)) })),
  };
}

const inputArgs = {
  inputs: { type: "positional", required: true, description: ".hdb/.hsb/.ndb files or directories of them" },
  lookup: { type: "string", valueHint: "FILE", description: "lookup-enabled signature names, one per line" },
  json: { type: "boolean", default: false, description: "print the result as JSON" },
} as const;

const check = defineCommand({
  meta: {
    name: "check",
    description: "Compile signature files as the agent would and report what they hold",
  },
  args: inputArgs,
  run({ args }): DatasetStats & { files: string[]; loadMs: number } {
    const { files, sources } = collect(args._ as string[], args.lookup);
    const t = performance.now();
    const ds = new Dataset(compileSources(sources));
    const result = {
      files: files.map((f) => f.name),
      loadMs: Math.round(performance.now() - t),
      ...ds.stats,
    };
    if (args.json) printJson(result);
    else
      printText(
        `${result.hashSignatures} hash and ${result.bodySignatures} body signatures (${result.lookupSignatures} lookup-enabled) ` +
          `from ${result.files.join(", ")}; compiled in ${result.loadMs} ms`,
      );
    return result;
  },
});

const pack = defineCommand({
  meta: {
    name: "pack",
    description:
      "Build a signed DatasetA package from signature files, validated by the agent's DatasetA handler in its sandboxed host",
  },
  args: {
    ...inputArgs,
    version: { type: "string", required: true, description: "content version (positive integer)" },
    keys: {
      type: "string",
      required: true,
      description: "key directory (signer.pem, signer.key, intermediate.pem)",
    },
    out: { type: "string", required: true, description: "package file to write" },
  },
  async run({ args }) {
    if (!/^[1-9][0-9]{0,15}$/.test(args.version)) {
      throw new ConfigError(
        "CFG_INVALID_ARGUMENT",
        `--version must be a positive integer, got ${JSON.stringify(args.version)}`,
      );
    }
    const { files, sources } = collect(args._ as string[], args.lookup);
    // The agent must never receive what it cannot load: compile every line before signing, and
    // ship the compiled columns so agents load them instead of compiling again (index-file.ts).
    const compiled = compileSources(sources);
    const stats = new Dataset(compiled).stats;
    const index = writeIndex(compiled, sources.find((s) => s.path === LOOKUP_FILE)?.bytes);
    const dir = mkdtempSync(join(tmpdir(), "outpost-dataseta-"));
    try {
      for (const f of files) copyFileSync(f.from, join(dir, f.name));
      writeFileSync(join(dir, INDEX_FILE), index);
      // And then as the agent runs it: DatasetA's handler in its sandboxed scanner host.
      await validatePayloadDir({
        type: "DatasetA",
        version: Number(args.version),
        dir,
        source: "signature files",
      });
      const keys = await loadSigningKeys(args.keys);
      const bytes = await packDirectory({ type: "DatasetA", version: Number(args.version), keys, dir });
      atomicWriteFile(args.out, bytes);
      const result = {
        file: args.out,
        type: "DatasetA",
        version: Number(args.version),
        size: bytes.length,
        sha384: sha384Hex(bytes),
        ...stats,
      };
      if (args.json) printJson(result);
      else
        printText(
          `wrote ${result.file}: DatasetA version ${result.version}, ${result.hashSignatures} hash + ${result.bodySignatures} body signatures, ` +
            `${result.size} bytes, sha384 ${result.sha384}`,
        );
      return result;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});

export default defineCommand({
  meta: { name: "datasets", description: "DatasetA signature sets (ClamAV-compatible .hdb/.hsb/.ndb)" },
  subCommands: { check, pack },
});
