/**
 * APPFEED's manifest on its own: what the supervisor needs to know about the
 * handler without evaluating its code (handlers/manifests.ts).
 */
import { type HandlerManifest, HandlerManifestSchema } from "../../core/handler/contract.ts";
import { appfeedManifest } from "../_shared/appfeed/manifest.ts";

export const appfeedTypeManifest = appfeedManifest(
  "APPFEED",
  "Vendor application-detection rules that generate exclusions (read-only, unprivileged)",
);

/**
 * The manifest as HandlerManifestSchema parses it. index.ts imports this `with { type: "macro" }`:
 * it runs when the executable is built, and the handler carries the result as a literal (no host
 * builds the manifest schema to start; a manifest that does not parse fails the build).
 */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(appfeedTypeManifest);
}
