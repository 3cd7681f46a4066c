/**
 * USERAPPFEED's manifest on its own: what the supervisor needs to know about
 * the handler without evaluating its code (handlers/manifests.ts).
 */
import { appfeedManifest } from "../_shared/appfeed/manifest.ts";

export const userAppfeedManifest = appfeedManifest(
  "USERAPPFEED",
  "Administrator's application-detection rules (tenant-signed) that generate exclusions",
);
