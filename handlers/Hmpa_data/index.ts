/**
 * The Hmpa_data content handler: a global allowlist of HitmanPro.Alert
 * detection thumbprints the service consults to suppress known-benign
 * detections quietly. Payload: one file, `allowlist.bin` (docs/hmpa-format.md);
 * other payload files are ignored. The handler needs no privileges: it only
 * reads the verified payload the host hands it.
 */

import { HandlerError } from "../../core/errors.ts";
import { type ContentView, defineParsedHandler } from "../../core/handler/contract.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { MAX_THUMBPRINT_LENGTH, PAYLOAD_FILE } from "./format.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };
import { Allowlist, invalid, validateAllowlist } from "./reader.ts";

export { PAYLOAD_FILE } from "./format.ts";

/** A batch is answered in one call; the cap keeps a call's cost bounded. */
export const MAX_CHECK_MANY = 100_000;

// Room for surrounding whitespace; anything longer cannot be a member anyway.
const ThumbprintSchema = lazySchema(() =>
  z.string().check(z.minLength(1), z.maxLength(4 * MAX_THUMBPRINT_LENGTH)),
);
export const CheckArgsSchema = lazySchema(() => z.strictObject({ thumbprint: ThumbprintSchema }));
export const CheckManyArgsSchema = lazySchema(() =>
  z.strictObject({ thumbprints: z.array(ThumbprintSchema).check(z.maxLength(MAX_CHECK_MANY)) }),
);

export interface CheckResult {
  thumbprint: string;
  allowed: boolean;
}

export interface HmpaStatus {
  entries: number;
  bytes: number;
  bytesPerEntry: number;
  loadMs: number;
  [k: string]: unknown;
}

function readPayload(content: ContentView): Uint8Array {
  if (!content.files.includes(PAYLOAD_FILE)) {
    throw invalid(PAYLOAD_FILE, "missing-file", `missing from ${content.type} v${content.version}`);
  }
  return content.read(PAYLOAD_FILE);
}

function parseArgs<T>(schema: z.ZodMiniType<T>, method: string, args: unknown): T {
  const parsed = schema.safeParse(args);
  if (!parsed.success) {
    throw new HandlerError("HND_HMPA_BAD_ARGS", `Hmpa_data ${method}: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

const loadTimes = new WeakMap<Allowlist, number>();

export const hmpaDataHandler = defineParsedHandler<Allowlist>({
  manifest: parsedManifest(),

  validate(content) {
    validateAllowlist(readPayload(content), { file: PAYLOAD_FILE });
  },

  load(content, caps) {
    const started = performance.now();
    const allowlist = Allowlist.from(readPayload(content), { file: PAYLOAD_FILE });
    const loadMs = performance.now() - started;
    loadTimes.set(allowlist, loadMs);
    caps.log.info("hmpa allowlist loaded", {
      version: content.version,
      entries: allowlist.size,
      bytes: allowlist.byteLength,
      loadMs,
    });
    return allowlist;
  },

  status(allowlist): HmpaStatus {
    return {
      entries: allowlist.size,
      bytes: allowlist.byteLength,
      bytesPerEntry: Math.round(allowlist.bytesPerEntry * 1000) / 1000,
      loadMs: Math.round((loadTimes.get(allowlist) ?? 0) * 1000) / 1000,
    };
  },

  call(allowlist, method, args): CheckResult | CheckResult[] {
    switch (method) {
      case "check": {
        const { thumbprint } = parseArgs(CheckArgsSchema, method, args);
        return { thumbprint, allowed: allowlist.has(thumbprint) };
      }
      case "checkMany": {
        const { thumbprints } = parseArgs(CheckManyArgsSchema, method, args);
        return thumbprints.map((thumbprint) => ({ thumbprint, allowed: allowlist.has(thumbprint) }));
      }
      default:
        throw new HandlerError("HND_UNKNOWN_METHOD", `Hmpa_data has no method ${JSON.stringify(method)}`, {
          details: { methods: ["check", "checkMany"] },
        });
    }
  },
});

export default hmpaDataHandler;
