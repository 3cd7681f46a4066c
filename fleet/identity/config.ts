/**
 * The release config's identity sections (referenced from fleet/config.ts):
 * per tenant, whether it is the vendor's own, which group its agents are
 * enrolled into and how fast and how many; fleet-wide, the heartbeat replay
 * window and the unenrolled compatibility mode; and who may open the console.
 */
import { z } from "zod";
import { lazySchema } from "../../core/schema/lazy-schema.ts";

const GROUP_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;
const SHA256_HEX = lazySchema(() => z.string().regex(/^[0-9a-f]{64}$/));

export const TenantSchema = lazySchema(() =>
  z
    .object({
      /** SHA-256 (hex) of the tenant token; the token itself is never stored here. */
      tokenSha256: SHA256_HEX,
      /**
       * The vendor's own tenant (engineering, dogfood): only its agents count in
       * `vendorOnly` groups, and its agents are not weight-capped in the gate.
       */
      vendor: z.boolean().default(false),
      /** The release group this tenant's agents are enrolled into; default: the last configured group. */
      group: z.string().regex(GROUP_RE).optional(),
      /** What the tenant token alone may enroll: at most `maxAgents` agents, at most `perHour` an hour. */
      enroll: z
        .object({
          maxAgents: z.number().int().min(0).max(2_000_000).default(1000),
          perHour: z.number().int().min(0).max(1_000_000).default(100),
        })
        .strict()
        .prefault({}),
    })
    .strict(),
);

export const FleetIdentitySchema = lazySchema(() =>
  z
    .object({
      /**
       * Compatibility mode for agents that predate enrollment: accept unsigned
       * heartbeats on the tenant token, as before. Off by default: anyone with
       * one endpoint's token could then forge agents (docs/rollout.md).
       */
      allowUnenrolled: z.boolean().default(false),
      /** A signed heartbeat whose sentAt is further than this from the server clock is refused. */
      maxSkewSeconds: z.number().int().min(5).max(3600).default(300),
    })
    .strict()
    .prefault({}),
);

export const ConsoleAuthSchema = lazySchema(() =>
  z
    .object({
      /** Operator name → SHA-256 (hex) of their console token (`contentctl release token --operator NAME`). */
      operators: z
        .record(z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/), z.object({ tokenSha256: SHA256_HEX }).strict())
        .default({}),
      /**
       * A reverse proxy that authenticates operators (SSO) and passes the
       * identity in this header, e.g. "x-forwarded-user". Trusted only from
       * `trustedProxies` peer addresses.
       */
      proxyHeader: z
        .string()
        .regex(/^[A-Za-z0-9-]{1,64}$/)
        .optional(),
      trustedProxies: z.array(z.string().min(1)).default(["127.0.0.1", "::1"]),
    })
    .strict()
    .prefault({}),
);

export type TenantConfig = z.infer<typeof TenantSchema>;
export type FleetIdentityConfig = z.infer<typeof FleetIdentitySchema>;
export type ConsoleAuthConfig = z.infer<typeof ConsoleAuthSchema>;

/** A tenant's enrollment group must exist, and a vendorOnly group takes only vendor tenants. */
export function checkTenantGroups(
  c: { groups: { name: string; vendorOnly: boolean }[]; fleet: { tenants: Record<string, TenantConfig> } },
  ctx: z.RefinementCtx,
): void {
  for (const [name, t] of Object.entries(c.fleet.tenants)) {
    if (t.group === undefined) continue;
    const g = c.groups.find((x) => x.name === t.group);
    if (!g) {
      ctx.addIssue({
        code: "custom",
        path: ["fleet", "tenants", name, "group"],
        message: `no release group named ${t.group}`,
      });
    } else if (g.vendorOnly && !t.vendor) {
      ctx.addIssue({
        code: "custom",
        path: ["fleet", "tenants", name, "group"],
        message: `${t.group} is vendorOnly; only a tenant with "vendor": true may enroll into it`,
      });
    }
  }
}
