/**
 * THE layering rule table, written once: which layers each layer may import
 * and which content types may import which. test/layering.test.ts checks
 * every import of the repository against it (rules L1–L4 there);
 * scripts/layering-readme.ts draws it into README.md "Layering", and that
 * test fails when the drawing is stale.
 */

export type Layer = "entry" | "handlers" | "types" | "shared" | "plugins" | "fleet" | "core";

/** THE rule table: which layers each layer may import (besides its own folder). Top to bottom. */
export const LAYERS: readonly {
  layer: Layer;
  units: RegExp;
  /** How the README's drawing names the folders (scripts/layering-readme.ts). */
  folders: string;
  mayImport: readonly Layer[];
  why: string;
}[] = [
  {
    layer: "entry",
    folders: "bin/ · scripts/ · bench/ · test/ · root files",
    units: /^(bin|scripts|bench|test|\.)$/,
    mayImport: ["entry", "handlers", "types", "shared", "plugins", "fleet", "core"],
    why: "entry points wire everything together",
  },
  {
    layer: "handlers",
    folders: "handlers/*.ts",
    units: /^handlers$/,
    mayImport: ["types", "shared", "plugins", "core"],
    why: "the registry of built-in handlers names every type",
  },
  {
    layer: "types",
    folders: "handlers/<Type>/",
    units: /^handlers\/[A-Z][^/]*$/,
    mayImport: ["shared", "plugins", "core"],
    why: "one content type owns its handler, engine, CLI, routes, tooling",
  },
  {
    layer: "shared",
    folders: "handlers/_shared/ · handlers/groups.ts",
    units: /^handlers\/(_shared\/[^/]+|groups)$/,
    mayImport: ["shared", "plugins", "core"],
    why: "code several types share (Lua sandbox, matcher, file types, host groups)",
  },
  {
    layer: "plugins",
    folders: "plugins/<adapter>/",
    units: /^plugins\/[^/]+$/,
    mayImport: ["core"],
    why: "swappable adapters",
  },
  {
    layer: "fleet",
    folders: "fleet/",
    units: /^fleet(\/[^/]+)?$/,
    mayImport: ["fleet", "core"],
    why: "vendor-side fleet service",
  },
  {
    layer: "core",
    folders: "core/",
    units: /^core(\/[^/]+)?$/,
    mayImport: ["core"],
    why: "the agent kernel",
  },
];

/** L2: the only imports from one content type into another. */
export const TYPE_DEPENDENCIES: Readonly<Record<string, readonly string[]>> = {
  // The scan requester looks detected executables up in LocalRepData and runs its process tagger.
  // … and scores scanned objects with the installed ML models (handlers/MLModel/scan-hook.ts).
  "handlers/DatasetA": ["handlers/LocalRepData", "handlers/MLModel"],
  // The IPS service asks NTP_OVERRIDES whether a loaded module forbids it (docs/ips.md).
  "handlers/EPIPS_data": ["handlers/NTP_OVERRIDES"],
};
