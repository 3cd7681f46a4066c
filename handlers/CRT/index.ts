/**
 * The CRT content handler: rules for removing known-incompatible software
 * before the agent is installed. Install policy on-demand — the scheduled
 * update cycle never installs or runs it; `agent install
 * --remove-incompatible` fetches it through the same signed channel, runs it
 * in the `install` host group (root, exec, write: the most privileged group,
 * alive only during that command) and removes it afterwards (docs/install.md).
 *
 * API:  scan   {}                   → { version, findings }   (changes nothing)
 *       remove { dryRun?: boolean }  → { version, dryRun, findings }
 */

import { HandlerError } from "../../core/errors.ts";
import { type Capabilities, defineParsedHandler } from "../../core/handler/contract.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { act, detect } from "./engine.ts";
import type { CrtRule } from "./format.ts";
import { readRules } from "./format.ts";
import { assertSafe } from "./guard.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };
import { liveProbe } from "./probe.ts";

interface Loaded {
  version: number;
  rules: CrtRule[];
  caps: Capabilities;
}

const RemoveArgs = lazySchema(() => z.strictObject({ dryRun: z._default(z.boolean(), false) }));

export const crtHandler = defineParsedHandler<Loaded>({
  manifest: parsedManifest(),
  validate(view) {
    assertSafe(readRules(view));
  },
  load(view, caps) {
    const rules = readRules(view);
    assertSafe(rules);
    return { version: view.version, rules, caps };
  },
  status({ rules }) {
    return { rules: rules.length };
  },
  async call({ version, rules, caps }, method, args) {
    switch (method) {
      case "scan":
        return { version, findings: await detect(rules, liveProbe(caps)) };
      case "remove": {
        const r = RemoveArgs.safeParse(args ?? {});
        if (!r.success) throw new HandlerError("HND_CRT_BAD_ARGS", `CRT remove: ${z.prettifyError(r.error)}`);
        const findings = await detect(rules, liveProbe(caps));
        if (r.data.dryRun) return { version, dryRun: true, findings };
        return {
          version,
          dryRun: false,
          findings: await act(findings, caps.exec as NonNullable<Capabilities["exec"]>),
        };
      }
      default:
        throw new HandlerError("HND_UNKNOWN_METHOD", `CRT has no method ${JSON.stringify(method)}`, {
          details: { methods: ["scan", "remove"] },
        });
    }
  },
});

export default crtHandler;
