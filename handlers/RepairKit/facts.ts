/**
 * The installation facts RepairKit works from: what the supervisor (or the
 * offline CLI) knows from the agent's config and writes to the repair work
 * dir for the repair host, which cannot read the config; and the types the
 * environment shares with its callers (modes, agent actions).
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { AgentStatus } from "../../core/agent/api.ts";
import type { AgentConfig } from "../../core/config.ts";
import { atomicWriteJson } from "../../core/fsutil.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";

export const FACTS_FILE = "facts.json";

/** Installation facts the supervisor (or the CLI) writes for the repair host, which cannot read the config. */
export const RepairFactsSchema = lazySchema(() =>
  z.strictObject({
    schema: z.literal(1),
    stateDir: z.string().check(z.minLength(1)),
    trustPath: z.string().check(z.minLength(1)),
    configFile: z.nullable(z.string()),
    update: z.strictObject({
      enabled: z.boolean(),
      intervalSeconds: z.number(),
      maxBackoffSeconds: z.number(),
      group: z.string(),
      repo: z.string(),
    }),
    agentUid: z.int().check(z.nonnegative()),
    agentGid: z.int().check(z.nonnegative()),
    writtenAt: z.string(),
    /** Verified by the writer (trust.ts), which has the CMS verifier the repair host does not load. */
    trust: z.optional(
      z.strictObject({
        trustSha256: z.nullable(z.string()),
        pem: z.strictObject({ ok: z.boolean(), certs: z.number(), error: z.optional(z.string()) }),
        caches: z.array(
          z.strictObject({
            group: z.string(),
            ok: z.boolean(),
            problem: z.nullable(z.string()),
            serial: z.nullable(z.number()),
            sha384: z.nullable(z.string()),
            verified: z.nullable(z.boolean()),
          }),
        ),
        verifies: z.nullable(z.boolean()),
      }),
    ),
  }),
);
export type RepairFacts = z.infer<typeof RepairFactsSchema>;
export type TrustFacts = NonNullable<RepairFacts["trust"]>;

export function factsFromConfig(config: AgentConfig, configFile: string | null): RepairFacts {
  return {
    schema: 1,
    stateDir: config.stateDir,
    trustPath: config.update.trust,
    configFile,
    update: {
      enabled: config.update.enabled,
      intervalSeconds: config.update.intervalSeconds,
      maxBackoffSeconds: config.update.maxBackoffSeconds,
      group: config.update.group,
      repo: config.update.repo,
    },
    agentUid: process.getuid?.() ?? 0,
    agentGid: process.getgid?.() ?? 0,
    writtenAt: new Date().toISOString(),
  };
}

export function writeFacts(workDir: string, facts: RepairFacts): void {
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  atomicWriteJson(join(workDir, FACTS_FILE), facts, 0o600);
}

export function readFacts(workDir: string): RepairFacts | null {
  try {
    return RepairFactsSchema.parse(JSON.parse(readFileSync(join(workDir, FACTS_FILE), "utf8")));
  } catch {
    return null;
  }
}

export type RepairMode = "in-cycle" | "online" | "offline";

/** Agent actions a fix may request; carried out after the checks. */
export interface AgentActions {
  status?(): Promise<AgentStatus | null>;
  update(): Promise<{ ok: boolean; detail: string }>;
  rollback(type: string): Promise<{ ok: boolean; detail: string }>;
}

export interface QueuedAction {
  action: "update" | "rollback";
  arg?: string;
}

export type CachedIndexFacts = TrustFacts["caches"][number];
