#!/usr/bin/env bun
/**
 * `contentctl`: the vendor side — keys, packaging, publishing, serving a
 * repository. Each subcommand is imported only when used, so a problem in
 * one cannot break the others or slow startup.
 */
// Must be evaluated before @peculiar/x509 (via tsyringe) in the bundle; see core/crypto/engine.ts.
import "reflect-metadata";
import { defineCommand } from "citty";
import { setAgentWiring } from "../core/cli/agent/wiring.ts";
import { setPackChecks } from "../core/cli/contentctl/pack-checks.ts";
import { runCli } from "../core/cli/main.ts";
import { COMMIT, VERSION } from "../core/version.ts";

// The validation hosts below check tenant signatures in a crypto worker started from this same
// executable (core/crypto/remote-trust.ts): it answers before any command is set up.
if (process.argv.length === 3 && process.argv[2] === "crypto-worker") {
  await (await import("./crypto-worker-main.ts")).cryptoWorkerMain("contentctl crypto-worker");
}

// pack, rules pack, datasets pack and release start validate content with the agent's own handlers, in
// host processes started from this executable (`contentctl host`, hidden; core/host/validate-offline.ts).
setAgentWiring({
  registry: () => import("../handlers/index.ts").then((m) => m.defaultRegistry()),
  hostRegistry: (group) => import("../handlers/host-registry.ts").then((m) => m.registryForGroup(group)),
});

// Types whose sources are checked before signing (a bad ESH pattern is named by file and line).
setPackChecks({
  ESH: () => import("../handlers/ESH/pack-check.ts").then((m) => m.checkEshSources),
  TELEMSUP: () => import("../handlers/TELEMSUP/pack-check.ts").then((m) => m.checkTelemsupSources),
  CRT: () => import("../handlers/CRT/pack-check.ts").then((m) => m.checkCrtSources),
});

const main = defineCommand({
  meta: {
    name: "contentctl",
    version: VERSION,
    description: "Outpost content tooling: keys, pack, publish, serve",
  },
  subCommands: {
    keys: () => import("../core/cli/contentctl/keys.ts").then((m) => m.default),
    pack: () => import("../core/cli/contentctl/pack.ts").then((m) => m.default),
    inspect: () => import("../core/cli/contentctl/inspect.ts").then((m) => m.default),
    publish: () => import("../core/cli/contentctl/publish.ts").then((m) => m.default),
    serve: () => import("../fleet/contentctl/serve.ts").then((m) => m.default),
    resign: () => import("../core/cli/contentctl/resign.ts").then((m) => m.default),
    release: () => import("../fleet/contentctl/release.ts").then((m) => m.default),
    fleet: () => import("../fleet/contentctl/fleet-exclusions.ts").then((m) => m.default),
    "hmpa-build": () => import("../handlers/Hmpa_data/cli-contentctl-hmpa-build.ts").then((m) => m.default),
    rules: () => import("../handlers/_shared/lua/cli-contentctl-rules.ts").then((m) => m.default),
    lake: () => import("../plugins/sinks/cli-contentctl-lake.ts").then((m) => m.default),
    datasets: () => import("../handlers/DatasetA/cli-contentctl-datasets.ts").then((m) => m.default),
    rep: () => import("../handlers/LocalRepData/cli-contentctl-rep.ts").then((m) => m.default),
    sxl: () => import("../handlers/DatasetA/cli-contentctl-sxl.ts").then((m) => m.sxlCommand),
    samples: () => import("../handlers/DatasetA/cli-contentctl-sxl.ts").then((m) => m.samplesCommand),
    policy: () => import("../handlers/RemapperRules/cli-contentctl-policy.ts").then((m) => m.default),
    flags: () => import("../handlers/Flags/cli-contentctl-flags.ts").then((m) => m.default),
    ml: () => import("../handlers/MLModel/cli-contentctl-ml.ts").then((m) => m.default),
    host: () => import("../core/cli/agent/host.ts").then((m) => m.default),
  },
});

await runCli(main, { version: `outpost-contentctl ${VERSION} (${COMMIT})` });
