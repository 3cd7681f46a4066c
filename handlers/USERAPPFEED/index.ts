/**
 * USERAPPFEED: the administrator's application-detection rules — the same
 * format, API and sandbox as APPFEED (handlers/_shared/appfeed), signed by
 * the tenant's key that the agent trusts for this type only
 * (handlers/_shared/tenant/signature.ts). Where a USERAPPFEED exclusion
 * conflicts with a vendor one, the vendor's wins (core/exclusions/service.ts).
 */
import { defineAppfeedHandler } from "../_shared/appfeed/handler.ts";
import { validateTenantManifest, verifyTenantSignature } from "../_shared/tenant/signature.ts";

export const userAppfeedHandler = defineAppfeedHandler({
  type: "USERAPPFEED",
  description: "Administrator's application-detection rules (tenant-signed) that generate exclusions",
  validate: validateTenantManifest,
  async verify(view, caps) {
    const signer = await verifyTenantSignature(view, caps);
    caps.log.info("USERAPPFEED tenant signature verified", { signer });
  },
});
