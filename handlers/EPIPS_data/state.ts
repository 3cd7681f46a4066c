/**
 * What the IPS must remember across agent restarts (stateDir/ips/state.json):
 * an administrator's explicit enable/disable, and a safety trip — once the
 * IPS switched itself off it stays off until an administrator re-enables it
 * or a newer EPIPS_data version installs, even if the agent restarts.
 * A corrupt file is reported and treated as "nothing remembered" except
 * that the IPS then stays off (the safe side) until an administrator acts.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { atomicWriteJson } from "../../core/fsutil.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";

export const SafetySchema = lazySchema(() =>
  z.strictObject({
    code: z.string(),
    reason: z.string(),
    at: z.string(),
    /** EPIPS_data version in force when it tripped; a newer one re-arms the IPS. */
    contentVersion: z.nullable(z.int()),
  }),
);

export const IpsStateSchema = lazySchema(() =>
  z.strictObject({
    /** null: follow the config's `ips.enabled`. */
    admin: z._default(z.nullable(z.enum(["enabled", "disabled"])), null),
    safety: z._default(z.nullable(SafetySchema), null),
  }),
);

export type IpsState = z.infer<typeof IpsStateSchema>;
export type Safety = z.infer<typeof SafetySchema>;

export const statePath = (stateDir: string) => join(stateDir, "ips", "state.json");

export function loadIpsState(stateDir: string): { state: IpsState; problem?: string } {
  const file = statePath(stateDir);
  if (!existsSync(file)) return { state: { admin: null, safety: null } };
  try {
    return { state: IpsStateSchema.parse(JSON.parse(readFileSync(file, "utf8"))) };
  } catch (e) {
    return {
      state: {
        admin: null,
        safety: {
          code: "IPS_STATE_CORRUPT",
          reason: `${file}: unreadable (${(e as Error).message.split("\n")[0]}); IPS kept off until re-enabled`,
          at: new Date().toISOString(),
          contentVersion: null,
        },
      },
      problem: `${file}: ${(e as Error).message.split("\n")[0]}`,
    };
  }
}

export function saveIpsState(stateDir: string, state: IpsState): void {
  atomicWriteJson(statePath(stateDir), state);
}
