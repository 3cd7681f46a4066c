/**
 * The built-in host groups and handler manifests as their schemas parse them
 * (defaults filled in), for the processes that know handlers by manifest: the
 * supervisor and the one-shot CLI (handlers/manifests.ts), and every host
 * (handlers/host-registry.ts).
 *
 * Imported `with { type: "macro" }`: Bun runs these functions when it bundles
 * (and when it transpiles the sources), and puts their result in the code as a
 * literal. So a process does not evaluate eighteen manifest modules, build the
 * manifest and group schemas and parse every entry each time it starts (issue
 * 21: ~8 ms of `agent scan`'s CLI), and a built-in manifest or group that does
 * not parse fails the build instead of the start. Nothing here is in the
 * executable but the literals.
 */

import type { HandlerManifest } from "../core/handler/contract.ts";
import { HandlerManifestSchema } from "../core/handler/contract.ts";
import type { GroupPolicy } from "../core/host/policy.ts";
import { builtinGroups } from "./groups.ts";
import { builtinManifests } from "./manifest-sources.ts";

/** Every built-in manifest, parsed, in the order of builtinHandlers() (index.ts). */
export function parsedBuiltinManifests(): HandlerManifest[] {
  return builtinManifests().map((m) => HandlerManifestSchema.parse(m));
}

/** Every built-in host group, as defineGroup parsed it (handlers/groups.ts). */
export function parsedBuiltinGroups(): GroupPolicy[] {
  return builtinGroups;
}
