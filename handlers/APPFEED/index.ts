/**
 * APPFEED: the vendor's signed and encrypted Lua rules that detect installed
 * applications and generate exclusions for them (docs/exclusions.md). The
 * handler is shared with USERAPPFEED (handlers/_shared/appfeed/handler.ts);
 * the supervisor side is feed.ts.
 */
import { defineAppfeedHandler } from "../_shared/appfeed/handler.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };

export const appfeedHandler = defineAppfeedHandler({
  type: "APPFEED",
  manifest: parsedManifest(),
});
