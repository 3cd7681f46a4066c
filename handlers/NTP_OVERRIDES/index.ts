/**
 * The NTP_OVERRIDES content handler: the list of kernel modules known to
 * break the IPS. It runs in the `ips` host group (no filesystem, no
 * network) beside EPIPS_data: the supervisor reads the loaded modules itself
 * (modules.ts) and asks `check`; a match makes the IPS service keep the
 * queue off even when policy enables it (docs/ips.md).
 *
 * API:  check { modules: [{ name, version }] } → { version, matches: OverrideMatch[] }
 *       list  {}                                → { version, entries }
 */

import { HandlerError } from "../../core/errors.ts";
import { type ContentView, defineParsedHandler } from "../../core/handler/contract.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { findOverrides, type OverrideEntry, OverridesSchema, PAYLOAD_FILE } from "./format.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };

const CheckArgs = lazySchema(() =>
  z.strictObject({
    modules: z
      .array(
        z.strictObject({
          name: z.string().check(z.maxLength(64)),
          version: z.nullable(z.string().check(z.maxLength(64))),
        }),
      )
      .check(z.maxLength(100_000)),
  }),
);

export function parseOverrides(view: Pick<ContentView, "files" | "readText">): OverrideEntry[] {
  if (!view.files.includes(PAYLOAD_FILE)) {
    throw new HandlerError("HND_NTP_OVERRIDES_INVALID", `${PAYLOAD_FILE}: missing from the payload`, {
      file: PAYLOAD_FILE,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(view.readText(PAYLOAD_FILE));
  } catch (e) {
    throw new HandlerError(
      "HND_NTP_OVERRIDES_INVALID",
      `${PAYLOAD_FILE}: not JSON: ${(e as Error).message}`,
      {
        file: PAYLOAD_FILE,
      },
    );
  }
  const r = OverridesSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new HandlerError(
      "HND_NTP_OVERRIDES_INVALID",
      `${PAYLOAD_FILE}: ${i?.path.join(".") || "(root)"}: ${i?.message ?? "invalid"}`,
      { file: PAYLOAD_FILE },
    );
  }
  return r.data.entries;
}

interface Loaded {
  version: number;
  entries: OverrideEntry[];
}

export const ntpOverridesHandler = defineParsedHandler<Loaded>({
  manifest: parsedManifest(),
  validate(view) {
    parseOverrides(view);
  },
  load(view) {
    return { version: view.version, entries: parseOverrides(view) };
  },
  status({ entries }) {
    return { entries: entries.length };
  },
  call({ version, entries }, method, args) {
    switch (method) {
      case "check": {
        const r = CheckArgs.safeParse(args ?? {});
        if (!r.success) {
          throw new HandlerError(
            "HND_NTP_OVERRIDES_BAD_ARGS",
            `NTP_OVERRIDES check: ${z.prettifyError(r.error)}`,
          );
        }
        return { version, matches: findOverrides(entries, r.data.modules) };
      }
      case "list":
        return { version, entries };
      default:
        throw new HandlerError(
          "HND_UNKNOWN_METHOD",
          `NTP_OVERRIDES has no method ${JSON.stringify(method)}`,
          {
            details: { methods: ["check", "list"] },
          },
        );
    }
  },
});

export default ntpOverridesHandler;
