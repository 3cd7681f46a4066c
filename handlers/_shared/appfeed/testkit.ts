/** Test helpers for the appfeed handlers. Tests only. */
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { HandlerManifestSchema } from "../../../core/handler/contract.ts";
import { defineAppfeedHandler } from "./handler.ts";
import { appfeedManifest } from "./manifest.ts";

/** A handler with APPFEED's manifest, for building capabilities in-process. */
export const appfeedHandlerForTest = defineAppfeedHandler({
  type: "APPFEED",
  manifest: HandlerManifestSchema.parse(appfeedManifest("APPFEED", "test")),
});

/** Limits roomy enough for the example rules on a loaded CI machine. */
export const APPFEED_TEST_LIMITS = {
  instructions: 5_000_000,
  callMs: 2000,
  callMemoryKb: 16384,
  outputBytes: 65536,
};

/** The example rules of `type` (examples/<type>/*.lua), by rule name. */
export function exampleRules(type: "APPFEED" | "USERAPPFEED"): Record<string, string> {
  const dir = resolve(import.meta.dir, "../../../examples", type);
  return Object.fromEntries(
    readdirSync(dir)
      .filter((f) => f.endsWith(".lua"))
      .map((f) => [f.slice(0, -4), readFileSync(join(dir, f), "utf8")]),
  );
}
