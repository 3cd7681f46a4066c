/**
 * ESH (Endpoint Self Help): regular expressions over local logs that point
 * at knowledge-base articles (rules.ts for the format and checks E1–E6).
 *
 * The handler runs in the `esh` host group: unprivileged, no network, and
 * no file system at all — the supervisor reads the logs the rules name
 * (service.ts; it alone decides which files may be read, from the agent's
 * config) and streams their lines here over IPC with `feed`. A content
 * package can therefore never make this process read anything; a log that
 * rotates, truncates or vanishes is the supervisor's tailer's concern and
 * reaches this process only as lines.
 *
 * Methods: `sources` (what to read), `feed` ({batches:[{source,lines}], now, quietMs}
 * → findings opened/updated/cleared), `findings` (for `agent selfhelp`).
 */

import { HandlerError } from "../../core/errors.ts";
import { type ContentView, defineParsedHandler } from "../../core/handler/contract.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { EshEngine, type Finding } from "./engine.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };
import { type ParsedRule, parseRuleFiles, ruleFileNames } from "./rules.ts";

interface EshLive {
  version: number;
  rules: ParsedRule[];
  engine: EshEngine;
  cleared: number;
}

function parse(view: ContentView): ParsedRule[] {
  const names = ruleFileNames(view.files);
  if (names.length === 0) {
    throw new HandlerError("HND_ESH_INVALID", `ESH v${view.version}: no *.jsonl rule files in the package`, {
      details: { reason: "missing-file" },
    });
  }
  const r = parseRuleFiles(names.map((name) => ({ name, text: view.readText(name) })));
  if (!r.ok) {
    const { file, line, reason } = r.problem;
    throw new HandlerError("HND_ESH_INVALID", `ESH v${view.version}: ${file}:${line}: ${reason}`, {
      file,
      details: { line, reason },
    });
  }
  return r.rules;
}

const FeedArgsSchema = lazySchema(() =>
  z.strictObject({
    batches: z._default(
      z
        .array(
          z.strictObject({
            source: z.string().check(z.minLength(1), z.maxLength(1100)),
            lines: z.array(z.string()).check(z.maxLength(100_000)),
          }),
        )
        .check(z.maxLength(64)),
      [],
    ),
    /** Supervisor clock (ms): the window and quiet times are judged on it. */
    now: z.int().check(z.positive()),
    quietMs: z.int().check(z.gte(1000), z.lte(30 * 86400_000)),
  }),
);

export interface FeedReply {
  opened: Finding[];
  updated: Finding[];
  cleared: Finding[];
  active: Finding[];
}

export const eshHandler = defineParsedHandler<EshLive>({
  manifest: parsedManifest(),

  validate(view) {
    parse(view);
  },

  load(view, caps) {
    const rules = parse(view);
    const engine = new EshEngine(rules);
    caps.log.info("self-help rules loaded", { version: view.version, rules: rules.length });
    return { version: view.version, rules, engine, cleared: 0 };
  },

  status(live) {
    return {
      rules: live.rules.length,
      sources: live.engine.sources().length,
      findings: live.engine.findings().length,
      linesMatched: live.engine.counters.lines,
    };
  },

  call(live, method, args) {
    switch (method) {
      case "sources":
        return { version: live.version, sources: live.engine.sources() };
      case "feed": {
        const parsed = FeedArgsSchema.safeParse(args ?? {});
        if (!parsed.success) {
          throw new HandlerError("HND_BAD_ARGS", `ESH feed: ${parsed.error.issues[0]?.message ?? "invalid"}`);
        }
        const a = parsed.data;
        const reply: FeedReply = { opened: [], updated: [], cleared: [], active: [] };
        for (const b of a.batches) {
          const r = live.engine.feed(b.source, b.lines, a.now);
          reply.opened.push(...r.opened);
          reply.updated.push(
            ...r.updated.filter((f) => !reply.opened.includes(f) && !reply.updated.includes(f)),
          );
        }
        reply.cleared = live.engine.expire(a.now, a.quietMs);
        live.cleared += reply.cleared.length;
        reply.active = live.engine.findings();
        return reply;
      }
      case "findings":
        return {
          version: live.version,
          rules: live.rules.length,
          findings: live.engine.findings(),
          counters: { ...live.engine.counters, cleared: live.cleared },
        };
      default:
        throw new HandlerError("HND_NO_METHOD", `ESH has no method ${method} (try: sources, feed, findings)`);
    }
  },
});

export default eshHandler;
