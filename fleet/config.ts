/**
 * The release configuration (`contentctl release --config release.json`):
 * the ordered release groups, how a release enters each (manual promotion
 * or automatic after the previous group soaked healthy), the health gate,
 * alert webhooks and fleet tenants. Relative paths are taken from the
 * config file's folder. Validated strictly: a typo in a gate must not turn
 * into an automatic promotion.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { TENANT_RE } from "../core/agent/heartbeat-protocol.ts";
import { ConfigError } from "../core/errors.ts";
import { lazySchema } from "../core/schema/lazy-schema.ts";
import {
  ConsoleAuthSchema,
  checkTenantGroups,
  FleetIdentitySchema,
  TenantSchema,
} from "./identity/config.ts";
import { SoakMinutesSchema, TypesConfigSchema } from "./type-rules.ts";

const GROUP_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;

export const GroupConfigSchema = lazySchema(() =>
  z
    .object({
      name: z.string().regex(GROUP_RE, "must match /^[a-z0-9][a-z0-9-]{0,63}$/"),
      /**
       * How a release enters this group: "manual" waits for `release promote`,
       * "auto" follows once the previous group has soaked and is healthy. The
       * first group is entered by `release start`.
       */
      promote: z.enum(["manual", "auto"]).default("auto"),
      /** How long the group runs a new version, healthy, before the next group may get it. */
      soakMinutes: SoakMinutesSchema,
      description: z.string().max(200).optional(),
      /** Only agents enrolled by a vendor tenant count in this group's health (docs/rollout.md, gate G1). */
      vendorOnly: z.boolean().default(false),
    })
    .strict(),
);

/**
 * The seed's phases: engineering test (no customers), internal dogfood, then
 * public groups. Both early steps and the first public step are manual;
 * after that the public groups follow on their own, spread over ~2.5 days.
 */
export const DEFAULT_GROUPS: z.input<typeof GroupConfigSchema>[] = [
  {
    name: "eng-test",
    promote: "manual",
    soakMinutes: 120,
    description: "engineering test, no customers",
    vendorOnly: true,
  },
  {
    name: "internal",
    promote: "manual",
    soakMinutes: 1440,
    description: "internal dogfood",
    vendorOnly: true,
  },
  { name: "public-1", promote: "manual", soakMinutes: 360 },
  { name: "public-2", promote: "auto", soakMinutes: 720 },
  { name: "public-3", promote: "auto", soakMinutes: 1440 },
  { name: "public-4", promote: "auto", soakMinutes: 1440 },
];

export const ReleaseConfigSchema = lazySchema(() =>
  z
    .object({
      schema: z.literal(1).default(1),
      /** Repository folder the groups' indexes are published into. */
      repo: z.string().min(1),
      /** Key directory (signer, intermediate, root) used for publishing and for re-signed rollbacks. */
      keys: z.string().min(1),
      /** Release state folder: release-state.json, fleet.json, staged packages. */
      stateDir: z.string().min(1).default("release-state"),
      groups: z
        .array(GroupConfigSchema)
        .min(1)
        .max(64)
        .refine((g) => new Set(g.map((x) => x.name)).size === g.length, "group names must be unique")
        .prefault(DEFAULT_GROUPS),
      health: z
        .object({
          /** Abort when the share of exposed agents reporting trouble exceeds this (0.005 = 0.5 %). */
          threshold: z.number().min(0).max(1).default(0.005),
          /** Exposed agents needed before a group can be judged healthy (fewer if the group is smaller). */
          minSample: z.number().int().min(1).default(200),
          /** Share of a group's active agents that must run the new version before promotion. */
          minAdoption: z.number().min(0).max(1).default(0.5),
          /** An agent counts as active in a group if it reported within this window. */
          activeWindowMinutes: z
            .number()
            .int()
            .min(1)
            .default(3 * 60),
          /** A customer tenant weighs at most this share of the sample (gate G4); vendor tenants are not capped. */
          maxTenantShare: z.number().gt(0).max(1).default(0.1),
          /** A group still short of its sample this long after the release reached it is reported (gate G6). */
          sampleDeadlineMinutes: z
            .number()
            .int()
            .min(1)
            .default(24 * 60),
        })
        .strict()
        .prefault({}),
      alerts: z
        .object({
          /** Release alerts (automatic abort, stuck promotion) are POSTed as JSON to each URL. */
          urls: z.array(z.string().url()).default([]),
          timeoutSeconds: z.number().positive().max(120).default(10),
        })
        .strict()
        .prefault({}),
      fleet: z
        .object({
          /** Tenant → SHA-256 (hex) of its heartbeat token; the token itself is never stored here. */
          tenants: z.record(z.string().regex(TENANT_RE), TenantSchema).default({}),
          identity: FleetIdentitySchema,
          /** Upper bound on remembered agents, so a flood of made-up agent ids cannot exhaust memory. */
          maxAgents: z.number().int().min(1).default(2_000_000),
        })
        .strict()
        .prefault({}),
      /** Per-type release rules (extra gates, longer soak, lower threshold, live-model gate): type-rules.ts. */
      types: TypesConfigSchema,
      console: ConsoleAuthSchema,
      /** Days until a published group index expires (agents refuse expired indexes). */
      expiresDays: z.number().int().min(1).max(366).default(7),
      /** The scheduler re-signs a group index this many hours before it would expire. */
      resignHours: z.number().int().min(1).default(48),
      /** How often `contentctl serve` runs the scheduler. */
      tickSeconds: z.number().int().min(1).max(3600).default(60),
    })
    .strict()
    .refine((c) => c.resignHours < c.expiresDays * 24, {
      path: ["resignHours"],
      message: "must be shorter than expiresDays, or every tick would re-sign",
    })
    .superRefine(checkTenantGroups),
);

export type ReleaseConfigInput = z.input<typeof ReleaseConfigSchema>;
export type GroupConfig = z.infer<typeof GroupConfigSchema>;
export type ReleaseConfig = z.infer<typeof ReleaseConfigSchema> & {
  /** Absolute paths, resolved against the config file's folder. */
  paths: { repo: string; keys: string; stateDir: string; file: string };
};

export function parseReleaseConfig(
  input: unknown,
  file = "<inline>",
  baseDir = process.cwd(),
): ReleaseConfig {
  const result = ReleaseConfigSchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.join(".") || "(root)";
    throw new ConfigError("CFG_INVALID", `${file}: ${where}: ${issue?.message ?? "invalid"}`, {
      file,
      details: { issues: result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })) },
    });
  }
  const c = result.data;
  return {
    ...c,
    paths: {
      repo: resolve(baseDir, c.repo),
      keys: resolve(baseDir, c.keys),
      stateDir: resolve(baseDir, c.stateDir),
      file,
    },
  };
}

export function loadReleaseConfig(file: string): ReleaseConfig {
  const path = resolve(file);
  if (!existsSync(path))
    throw new ConfigError("CFG_NOT_FOUND", `${path}: release config not found`, { file: path });
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ConfigError("CFG_SYNTAX", `${path}: not valid JSON: ${(e as Error).message}`, {
      file: path,
      cause: e,
    });
  }
  return parseReleaseConfig(json, path, dirname(path));
}
