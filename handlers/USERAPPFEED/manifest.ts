/**
 * USERAPPFEED's manifest on its own: what the supervisor needs to know about
 * the handler without evaluating its code (handlers/manifests.ts).
 */
import { type HandlerManifest, HandlerManifestSchema } from "../../core/handler/contract.ts";
import { appfeedManifest } from "../_shared/appfeed/manifest.ts";

export const userAppfeedManifest = appfeedManifest(
  "USERAPPFEED",
  "Administrator's application-detection rules (tenant-signed) that generate exclusions",
);

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(userAppfeedManifest);
}
