/**
 * The EPIPS_data content handler: IPS signatures in a subset of Suricata's
 * rule language (docs/ips.md), matched in the `ips` host group — no
 * filesystem, no network — against packets the supervisor's NFQUEUE reader
 * sends over IPC in batches (service.ts). Payload: one or more `*.rules`
 * files; other files are ignored.
 *
 * API (JSON plus Uint8Array):
 *   inspect { data, lens }  → BatchResult (engine.ts)
 *   stats   { limit? }      → EngineStats with per-signature hits
 */

import { HandlerError } from "../../core/errors.ts";
import { type ContentView, defineParsedHandler } from "../../core/handler/contract.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { type EngineStats, IpsEngine } from "./engine.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };
import { buildRuleSet, type RuleSet } from "./rules/compile.ts";
import { parseRuleFilesAsync, RuleError } from "./rules/parse.ts";

/** Packets one inspect call may carry; the supervisor batches far fewer. */
export const MAX_BATCH_PACKETS = 4096;

const InspectArgs = lazySchema(() =>
  z.strictObject({
    data: z.instanceof(Uint8Array),
    lens: z.array(z.int().check(z.gte(0), z.lte(65_535))).check(z.maxLength(MAX_BATCH_PACKETS)),
  }),
);
const StatsArgs = lazySchema(() =>
  z.strictObject({ limit: z._default(z.int().check(z.gte(0), z.lte(1_000_000)), 1000) }),
);

function parse<T>(schema: z.ZodMiniType<T>, method: string, args: unknown): T {
  const r = schema.safeParse(args ?? {});
  if (!r.success)
    throw new HandlerError("HND_EPIPS_BAD_ARGS", `EPIPS_data ${method}: ${z.prettifyError(r.error)}`);
  return r.data;
}

/** Compiles every `*.rules` file of the payload; a RuleError becomes HND_EPIPS_INVALID naming file, line and sid. */
export async function compileView(view: Pick<ContentView, "files" | "readText">): Promise<RuleSet> {
  const files = view.files.filter((f) => f.endsWith(".rules")).sort();
  if (files.length === 0)
    throw new HandlerError("HND_EPIPS_INVALID", "payload has no *.rules file", { file: "payload" });
  try {
    // Yielding builds: a 1M-rule file takes a minute, and the host must keep answering heartbeats meanwhile.
    const { rules } = await parseRuleFilesAsync(
      files.map((name) => ({ name, text: () => view.readText(name) })),
    );
    return await buildRuleSet(rules);
  } catch (e) {
    if (e instanceof RuleError) {
      throw new HandlerError("HND_EPIPS_INVALID", e.message, {
        file: e.file,
        details: { line: e.line, ...(e.sid === undefined ? {} : { sid: e.sid }), rule: e.rule },
      });
    }
    throw e;
  }
}

/** validate() compiles; load() of the same version reuses it instead of compiling twice. */
let built: { key: string; set: RuleSet; ms: number } | undefined;
const keyOf = (v: ContentView) => `${v.type}:${v.version}:${v.signingTime}`;

interface Loaded {
  engine: IpsEngine;
  loadMs: number;
}

export const epipsDataHandler = defineParsedHandler<Loaded>({
  manifest: parsedManifest(),

  async validate(view) {
    const t = performance.now();
    built = undefined;
    built = { key: keyOf(view), set: await compileView(view), ms: performance.now() - t };
  },

  async load(view, caps) {
    const cached = built?.key === keyOf(view) ? built : undefined;
    built = undefined;
    const t = performance.now();
    const set = cached?.set ?? (await compileView(view));
    const loadMs = cached?.ms ?? performance.now() - t;
    caps.log.info("ips signatures loaded", { version: view.version, rules: set.rules.length, loadMs });
    return { engine: new IpsEngine(view.version, set), loadMs };
  },

  status({ engine, loadMs }) {
    const s = engine.stats(0);
    return {
      rules: s.rules,
      unanchored: s.unanchored,
      indexBytes: s.indexBytes,
      loadMs: Math.round(loadMs),
      packets: s.packets,
      detections: s.detections,
    };
  },

  call({ engine }, method, args): unknown {
    switch (method) {
      case "inspect": {
        const { data, lens } = parse(InspectArgs, method, args);
        return engine.inspect(data, lens);
      }
      case "stats": {
        const { limit } = parse(StatsArgs, method, args);
        return engine.stats(limit) satisfies EngineStats;
      }
      default:
        throw new HandlerError("HND_UNKNOWN_METHOD", `EPIPS_data has no method ${JSON.stringify(method)}`, {
          details: { methods: ["inspect", "stats"] },
        });
    }
  },
});

export default epipsDataHandler;
