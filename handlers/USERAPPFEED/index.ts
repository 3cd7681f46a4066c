/**
 * USERAPPFEED: the administrator's application-detection rules — the same
 * format, API and sandbox as APPFEED (handlers/_shared/appfeed), signed by
 * the tenant's key that the agent trusts for this type only
 * (handlers/_shared/tenant/signature.ts, rules T1–T5). Without a verified
 * tenant signature the package is refused or installed inert (nothing of
 * it runs, nothing is excluded). Where a USERAPPFEED exclusion
 * conflicts with a vendor one, the vendor's wins (core/exclusions/service.ts).
 */
import { defineAppfeedHandler } from "../_shared/appfeed/handler.ts";
import { tenantEvidence, tenantVerdict, validateTenantManifest } from "../_shared/tenant/signature.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };

export const userAppfeedHandler = defineAppfeedHandler({
  type: "USERAPPFEED",
  manifest: parsedManifest(),
  validate: validateTenantManifest,
  gate(view) {
    const evidence = tenantEvidence(view);
    return (caps) => tenantVerdict(evidence, caps);
  },
});
