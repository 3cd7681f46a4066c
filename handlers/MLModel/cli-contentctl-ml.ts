/**
 * `contentctl ml build`: makes one model folder of an MLModel payload from
 * an AssemblyScript source (compiled with the `assemblyscript` package) or a
 * .wasm built elsewhere, its weights, a manifest and golden inputs. The
 * golden scores are computed by the agent's own runtime and the folder is
 * checked with rules M1–M11 before anything is written (build.ts).
 * `contentctl pack --type MLModel` then signs the payload folder.
 */
import { readFileSync } from "node:fs";
import { defineCommand } from "citty";
import { printJson, printText, UsageError } from "../../core/cli/output.ts";
import { ConfigError } from "../../core/errors.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { type BuildSummary, buildModel, compileAssemblyScript } from "./build.ts";

const GoldenInputs = lazySchema(() =>
  z.union([
    z.array(z.array(z.number())).check(z.minLength(1)),
    z.looseObject({
      vectors: z.array(z.looseObject({ features: z.array(z.number()) })).check(z.minLength(1)),
    }),
  ]),
);

function readJson(file: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new ConfigError("CFG_SYNTAX", `${file}: ${what} is not readable JSON: ${(e as Error).message}`, {
      file,
    });
  }
}

const build = defineCommand({
  meta: {
    name: "build",
    description:
      "Build one model folder (manifest.json, model.wasm, weights.bin, golden.json) into OUT/<name>/, checked with the agent's rules M1-M11",
  },
  args: {
    source: {
      type: "string",
      required: true,
      description: "AssemblyScript model (.as/.ts, compiled with asc) or a prebuilt .wasm",
    },
    weights: { type: "string", required: true, description: "weights file the model's init() accepts" },
    manifest: {
      type: "string",
      required: true,
      description:
        "JSON: { name, mode, inputKinds, threshold, sampleRate, featureVersion, limits? } (weights digest is added)",
    },
    "golden-inputs": {
      type: "string",
      required: true,
      description:
        "JSON feature vectors ([[...], ...]) or an existing golden.json; their scores become golden vectors",
    },
    out: {
      type: "string",
      required: true,
      description: "payload folder; the model is written to OUT/<name>/",
    },
    json: { type: "boolean", default: false, description: "print the summary as JSON" },
  },
  async run({ args }): Promise<BuildSummary> {
    const manifest = readJson(args.manifest, "the manifest") as Record<string, unknown>;
    const pages = (manifest.limits as { memoryPages?: number } | undefined)?.memoryPages ?? 64;
    const wasm = /\.wasm$/i.test(args.source)
      ? new Uint8Array(readFileSync(args.source))
      : /\.(as|ts)$/i.test(args.source)
        ? await compileAssemblyScript(args.source, pages)
        : (() => {
            throw new UsageError("CLI_USAGE", `${args.source}: --source must end in .as, .ts or .wasm`);
          })();
    const g = GoldenInputs.safeParse(readJson(args["golden-inputs"], "the golden inputs"));
    if (!g.success)
      throw new ConfigError("CFG_INVALID", `${args["golden-inputs"]}: ${z.prettifyError(g.error)}`, {
        file: args["golden-inputs"],
      });
    const goldenInputs = Array.isArray(g.data) ? g.data : g.data.vectors.map((v) => v.features);
    const summary = await buildModel({
      wasm,
      weights: new Uint8Array(readFileSync(args.weights)),
      manifest: manifest as never,
      goldenInputs,
      out: args.out,
    });
    if (args.json) printJson(summary);
    else
      printText(
        `built ${summary.dir}: ${summary.mode} model, ${summary.wasmBytes} B wasm, ${summary.weightsBytes} B weights, ` +
          `${summary.goldenVectors} golden vectors, ${summary.meanScoreMs} ms/score`,
      );
    return summary;
  },
});

export default defineCommand({
  meta: {
    name: "ml",
    description: "MLModel tooling: build a model folder for `contentctl pack --type MLModel`",
  },
  subCommands: { build },
});
