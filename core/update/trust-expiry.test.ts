/** The early warning for a trust store about to expire (what self-help rule KBA-1002 looks for). */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { makeVendor } from "../../test/fixtures/vendor.ts";
import { TrustStore } from "../crypto/cms.ts";
import { Logger, type LogRecord } from "../log.ts";
import { expiringRoots, TRUST_WARN_DAYS, warnIfTrustExpiring } from "./trust-expiry.ts";

test("roots expiring within 30 days are logged as 'trust store certificate expires soon'", async () => {
  const vendor = await makeVendor();
  try {
    const trust = TrustStore.fromPem(readFileSync(vendor.trustPath, "utf8"));
    const notAfter = trust.roots[0]!.notAfter.getTime();
    expect(expiringRoots(trust, new Date(notAfter - (TRUST_WARN_DAYS + 1) * 86400_000))).toEqual([]);
    const soon = expiringRoots(trust, new Date(notAfter - 10 * 86400_000 - 1000));
    expect(soon).toHaveLength(1);
    expect(soon[0]!.daysLeft).toBe(10);
    const records: LogRecord[] = [];
    const logger = new Logger({}, undefined, "info", false);
    logger.addSink((r) => records.push(r));
    warnIfTrustExpiring(trust, new Date(notAfter - 86400_000), logger);
    expect(records).toEqual([
      expect.objectContaining({ level: "warn", msg: "trust store certificate expires soon", daysLeft: 1 }),
    ]);
  } finally {
    vendor.cleanup();
  }
});
