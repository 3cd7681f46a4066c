/**
 * CRT content: `rules.json`, rules for software that must not run beside
 * the agent (another fanotify on-access scanner, another NFQUEUE IPS, a
 * competing agent). A rule matches when any of its detectors finds its
 * target; its actions then remove or disable what was found. Validated at
 * the edge with zod; the safety rules (guard.ts) come on top.
 */

import { HandlerError } from "../../core/errors.ts";
import type { ContentView } from "../../core/handler/contract.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";

export const RULES_FILE = "rules.json";

// Debian package names (Policy 5.6.1); unit names as systemd spells them; absolute paths; process comm (≤15 chars).
const PackageName = lazySchema(() =>
  z.string().check(z.regex(/^[a-z0-9][a-z0-9+.-]{1,99}$/, "a Debian package name")),
);
const UnitName = lazySchema(() =>
  z
    .string()
    .check(
      z.regex(
        /^[A-Za-z0-9:_.@-]{1,200}\.(service|socket|timer|path|mount)$/,
        "a systemd unit name such as foo.service",
      ),
    ),
);
const AbsPath = lazySchema(() =>
  z.string().check(
    z.regex(/^\/[^\0]*$/, "an absolute path"),
    z.refine((p) => !p.split("/").includes(".."), "no '..' segments"),
  ),
);
const ProcessName = lazySchema(() =>
  z.string().check(z.regex(/^[^/\0]{1,15}$/, "a process name (comm, at most 15 characters)")),
);

export const ActionSchema = lazySchema(() =>
  z.discriminatedUnion("kind", [
    z.strictObject({ kind: z.literal("apt-remove"), package: PackageName }),
    z.strictObject({ kind: z.literal("systemctl-disable"), unit: UnitName }),
  ]),
);
export type CrtAction = z.infer<typeof ActionSchema>;

export const RuleSchema = lazySchema(() =>
  z.strictObject({
    id: z.string().check(z.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/)),
    title: z.string().check(z.minLength(1), z.maxLength(200)),
    /** Why the software is incompatible, shown to the administrator before removal. */
    reason: z.string().check(z.minLength(1), z.maxLength(2000)),
    detect: z
      .strictObject({
        packages: z._default(z.array(PackageName).check(z.maxLength(64)), []),
        units: z._default(z.array(UnitName).check(z.maxLength(64)), []),
        paths: z._default(z.array(AbsPath).check(z.maxLength(64)), []),
        processes: z._default(z.array(ProcessName).check(z.maxLength(64)), []),
      })
      .check(
        z.refine((d) => d.packages.length + d.units.length + d.paths.length + d.processes.length > 0, {
          message: "a rule needs at least one detector",
        }),
      ),
    actions: z.array(ActionSchema).check(z.minLength(1), z.maxLength(32)),
  }),
);
export type CrtRule = z.infer<typeof RuleSchema>;

export const RulesFileSchema = lazySchema(() =>
  z.strictObject({
    rules: z.array(RuleSchema).check(
      z.maxLength(1000),
      z.refine((rs) => new Set(rs.map((r) => r.id)).size === rs.length, {
        message: "rule ids must be unique",
      }),
    ),
  }),
);

export function invalid(message: string, details?: Record<string, unknown>): HandlerError {
  return new HandlerError("CRT_INVALID", `${RULES_FILE}: ${message}`, { file: RULES_FILE, details });
}

/** Parses rules.json text (schema only; guard.ts checks what the rules may touch). */
export function parseRulesText(text: string): CrtRule[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw invalid(`not JSON: ${(e as Error).message}`);
  }
  const r = RulesFileSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw invalid(`${i?.path.join(".") || "(root)"}: ${i?.message ?? "invalid"}`);
  }
  return r.data.rules;
}

export function readRules(view: Pick<ContentView, "files" | "readText">): CrtRule[] {
  if (!view.files.includes(RULES_FILE)) throw invalid("missing from the payload");
  return parseRulesText(view.readText(RULES_FILE));
}
