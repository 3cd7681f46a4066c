#!/usr/bin/env bun
/**
 * Writes core/config-defaults.generated.ts: the agent config with every
 * section left out, as AgentConfigSchema parses it. parseConfig takes the
 * sections a file does not name from it instead of building their schemas
 * (core/config.ts, parseBySection); core/config-defaults.test.ts fails when
 * a default changed and this was not run again.
 *
 *   bun scripts/config-defaults.ts
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderConfigDefaults } from "../core/config-defaults.ts";

const out = join(import.meta.dir, "../core/config-defaults.generated.ts");
writeFileSync(out, renderConfigDefaults());
console.log(`wrote ${out}`);
