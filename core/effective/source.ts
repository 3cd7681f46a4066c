/**
 * Remembers what a loaded AgentConfig was made from (agent.json as written
 * plus command-line overrides), so the effective config can say which
 * values the administrator set and which are defaults. loadConfig records
 * it; a config built any other way (tests, parseConfig) falls back to
 * "explicit = differs from the default".
 */
import type { AgentConfig } from "../config.ts";

export interface ConfigSource {
  /** agent.json merged with overrides, before defaults. */
  input: Record<string, unknown>;
  file?: string;
}

const sources = new WeakMap<AgentConfig, ConfigSource>();

export function rememberConfigSource(config: AgentConfig, source: ConfigSource): void {
  sources.set(config, source);
}

export function configSource(config: AgentConfig): ConfigSource | undefined {
  return sources.get(config);
}
