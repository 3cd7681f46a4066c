/**
 * RemapperRules: rule files that turn the tenant's policy documents (XML
 * from the management console) into agent configuration values. Runs in the
 * `config` host group — no filesystem, no network: the supervisor passes the
 * documents in, this handler returns one overlay (or one failure) per rule
 * file, and the supervisor's effective-config service decides and applies
 * (core/effective/service.ts). Format and rules: docs/policy.md.
 *
 * The XML and XPath libraries cost a few hundred ms to import and every
 * agent command that builds the handler registry would pay it, so they load
 * on first use through `loadEngine`. A host process must have all of its
 * code before Landlock closes the filesystem (core/host/child.ts), and Bun
 * resolves an `import()` against the filesystem even for a module already
 * loaded — so the `config` group's entry in handlers/host-registry.ts calls
 * `loadEngine()` before the sandbox, and later calls reuse that promise.
 */

import { HandlerError } from "../../core/errors.ts";
import { defineParsedHandler } from "../../core/handler/contract.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import type { ParsedRuleFile } from "./format.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };

type Engine = typeof import("./engine.ts");
let engine: Promise<Engine> | undefined;

/** The parsers and the remapper, imported once (see above). */
export function loadEngine(): Promise<Engine> {
  engine ??= import("./engine.ts");
  return engine;
}

interface RemapperLive {
  version: number;
  files: ParsedRuleFile[];
}

const isRuleFile = (path: string) => path.endsWith(".json");

const RemapArgs = lazySchema(() =>
  z.strictObject({
    documents: z.array(z.looseObject({ name: z.string(), version: z.optional(z.int()), xml: z.string() })),
  }),
);

async function parseAll(view: {
  files: readonly string[];
  readText(p: string): string;
  type: string;
}): Promise<ParsedRuleFile[]> {
  const { parseRuleFile } = await loadEngine();
  const paths = view.files.filter(isRuleFile).sort();
  if (paths.length === 0) {
    throw new HandlerError("POL_RULES_INVALID", `${view.type}: the package holds no rule files (*.json)`);
  }
  return paths.map((p) => parseRuleFile(view.readText(p), p));
}

export const remapperRulesHandler = defineParsedHandler<RemapperLive>({
  manifest: parsedManifest(),

  async validate(view) {
    await parseAll(view);
  },

  async load(view, caps) {
    const files = await parseAll(view);
    caps.log.info("remapper rules loaded", { version: view.version, files: files.length });
    return { version: view.version, files };
  },

  status(live) {
    return { ruleFiles: live.files.length, rules: live.files.reduce((n, f) => n + f.rules.length, 0) };
  },

  async call(live, method, args) {
    if (method === "remap") {
      const { remap } = await loadEngine();
      const a = RemapArgs.safeParse(args);
      if (!a.success)
        throw new HandlerError(
          "HND_BAD_ARGS",
          `remap needs {documents:[{name, xml}]}: ${a.error.issues[0]?.message}`,
        );
      return { version: live.version, files: remap(live.files, a.data.documents) };
    }
    if (method === "rules") {
      return {
        version: live.version,
        files: live.files.map((f) => ({
          file: f.file,
          document: f.document,
          rules: f.rules.map((r) => ({ id: r.id, target: r.target })),
        })),
      };
    }
    throw new HandlerError("HND_NO_METHOD", `RemapperRules has no method ${method} (try: remap, rules)`);
  },
});
