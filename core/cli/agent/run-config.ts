/**
 * The configuration `agent run` was started with, remembered in its state
 * dir (STATE/run-config.json: the config file's absolute path and the
 * command-line overrides). Commands that work offline on a state dir
 * (`agent status`, `content list`, `run-repair --dry-run`…) and are given
 * only `--state` then find the same trust store, repository and settings as
 * the agent, instead of the built-in defaults (/etc/outpost/root.pem) that
 * the agent does not use. An explicit `--config` always wins.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { AgentConfigInput } from "../../config.ts";
import { ConfigError } from "../../errors.ts";
import { atomicWriteFile } from "../../fsutil.ts";
import { lazySchema } from "../../schema/lazy-schema.ts";
import { z } from "../../schema/zod.ts";

export const RUN_CONFIG_FILE = "run-config.json";

const RunConfigSchema = lazySchema(() =>
  z.strictObject({
    /** Absolute path of the config file, null when the agent ran on defaults and flags. */
    config: z.nullable(z.string().check(z.minLength(1))),
    /** The overrides the command line gave (repo, group, trust, port). */
    overrides: z.record(z.string(), z.unknown()),
  }),
);
export type RunConfig = z.infer<typeof RunConfigSchema>;

/** Written by `agent run` once its config loaded. */
export function recordRunConfig(
  stateDir: string,
  configFile: string | undefined,
  overrides: AgentConfigInput,
): void {
  const body: RunConfig = {
    config: configFile ? resolve(configFile) : null,
    overrides: JSON.parse(JSON.stringify(overrides)) as Record<string, unknown>,
  };
  atomicWriteFile(join(stateDir, RUN_CONFIG_FILE), `${JSON.stringify(body, null, 2)}\n`, 0o600);
}

/** What `agent run` recorded for `stateDir`, if anything; a corrupt record is an error naming the file. */
export function recordedRunConfig(stateDir: string): RunConfig | undefined {
  const file = join(stateDir, RUN_CONFIG_FILE);
  if (!existsSync(file)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new ConfigError("CFG_SYNTAX", `${file}: not valid JSON: ${(e as Error).message}`, {
      file,
      cause: e,
    });
  }
  const r = RunConfigSchema.safeParse(raw);
  if (!r.success) {
    throw new ConfigError("CFG_INVALID", `${file}: ${r.error.issues[0]?.message ?? "invalid"}`, { file });
  }
  return r.data;
}

/** Overrides with a relative trust path or repository folder made absolute (a later command may run elsewhere). */
export function absolutePaths(
  o: { update: { repo?: string; group?: string; trust?: string } } & AgentConfigInput,
): AgentConfigInput {
  const u = o.update;
  const isUrl = (r: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(r);
  return {
    ...o,
    update: {
      ...u,
      ...(u.trust ? { trust: resolve(u.trust) } : {}),
      ...(u.repo && !isUrl(u.repo) ? { repo: resolve(u.repo) } : {}),
    },
  };
}
