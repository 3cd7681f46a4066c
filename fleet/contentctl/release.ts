/**
 * `contentctl release start|promote|abort|close|status|tick|token|audit`: staged content
 * rollouts through release groups (docs/rollout.md). Subcommands load lazily.
 */
import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "release", description: "Staged rollouts through release groups, gated on fleet health" },
  subCommands: {
    start: () => import("./release-start.ts").then((m) => m.default),
    promote: () => import("./release-promote.ts").then((m) => m.default),
    abort: () => import("./release-abort.ts").then((m) => m.default),
    status: () => import("./release-status.ts").then((m) => m.default),
    tick: () => import("./release-tick.ts").then((m) => m.default),
    token: () => import("./release-token.ts").then((m) => m.default),
    close: () => import("./release-close.ts").then((m) => m.default),
    audit: () => import("./release-audit.ts").then((m) => m.default),
  },
});
