/**
 * The shape of release state (zod): what the database's rows must make up
 * to be used, and what earlier versions' JSON state file held. Here, below
 * the store that checks it, so fleet/db depends on nothing above it.
 */
import { z } from "zod";
import { PreviousEntrySchema } from "../../core/repo/index-format.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";

const iso = lazySchema(() => z.iso.datetime());

export const PackageRefSchema = lazySchema(() =>
  z
    .object({
      /** Relative to the release state folder (packages/…), content-addressed. */
      file: z.string().min(1),
      sha384: z.string().regex(/^[0-9a-f]{96}$/),
      size: z.number().int().positive(),
      signingTime: iso,
    })
    .strict(),
);

export const GroupProgressSchema = lazySchema(() =>
  z
    .object({
      name: z.string(),
      /**
       * What the group listed for the type just before this release reached it
       * (null: nothing). Recorded before publishing, so a resumed publish never
       * mistakes the new version for the old one.
       */
      before: z.nullable(PreviousEntrySchema).optional(),
      publishedAt: iso.nullable(),
      revertedAt: iso.nullable(),
    })
    .strict(),
);

export const ReleaseSchema = lazySchema(() =>
  z
    .object({
      id: z.string(),
      type: z.string(),
      version: z.number().int().positive(),
      package: PackageRefSchema,
      /** closed: finished by an operator (`release close`) without completing; nothing is taken back. */
      status: z.enum(["active", "completed", "aborted", "closed"]),
      startedAt: iso,
      finishedAt: iso.nullable(),
      groups: z.array(GroupProgressSchema).min(1),
      abort: z
        .object({
          at: iso,
          reason: z.string(),
          by: z.enum(["operator", "health"]),
          /** The re-signed copy of the last good content (version + 1), per distinct previous package. */
          revertVersion: z.number().int().positive(),
          reverts: z.record(z.string(), PackageRefSchema),
        })
        .strict()
        .nullable(),
      /** ML models the package carries and their modes (MLModel only), for the live-model gate (T3). */
      models: z
        .array(z.object({ name: z.string(), mode: z.enum(["telemetry", "live"]) }).strict())
        .optional(),
      /** Human-readable history, newest last (capped). */
      log: z.array(
        z.object({ at: iso, event: z.string(), group: z.string().optional(), detail: z.string() }),
      ),
      /** Health samples per live group over time, for the console (capped, thinned). */
      health: z.array(
        z
          .object({
            at: iso,
            group: z.string(),
            agents: z.number().int(),
            exposed: z.number().int(),
            affected: z.number().int(),
          })
          .strict(),
      ),
    })
    .strict(),
);

export const ReleaseStateSchema = lazySchema(() =>
  z.object({ schema: z.literal(1), releases: z.array(ReleaseSchema) }).strict(),
);

export type PackageRef = z.infer<typeof PackageRefSchema>;
export type GroupProgress = z.infer<typeof GroupProgressSchema>;
export type Release = z.infer<typeof ReleaseSchema>;
export type ReleaseState = z.infer<typeof ReleaseStateSchema>;
