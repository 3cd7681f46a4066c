#!/usr/bin/env bun
/**
 * `agent`: the endpoint side. Subcommands load lazily so `agent --version`
 * and control-plane calls stay fast, and handlers and sinks are wired here
 * because the core must not import them.
 */
// Must be evaluated before @peculiar/x509 (via tsyringe) in the bundle; see core/crypto/engine.ts.
import "reflect-metadata";
import { defineCommand } from "citty";
import type { Agent } from "../core/agent/runtime.ts";
import { versionLine } from "../core/cli/agent/version.ts";
import { setAgentWiring } from "../core/cli/agent/wiring.ts";
import { runCli } from "../core/cli/main.ts";
import { VERSION } from "../core/version.ts";

setAgentWiring({
  registry: () => import("../handlers/index.ts").then((m) => m.defaultRegistry()),
  deferredRegistry: (only) => import("../handlers/manifests.ts").then((m) => m.manifestRegistry(only)),
  hostRegistry: (group) => import("../handlers/host-registry.ts").then((m) => m.registryForGroup(group)),
  alertSinks: (config) =>
    import("../plugins/sinks/http-alerts.ts").then((m) =>
      m.alertSinksFromUrls(config.alerts.urls, config.alerts.timeoutSeconds),
    ),
  // RepairKit's self-repair pass runs after every scheduled update cycle, as su-repair does.
  afterCycle: () => import("../handlers/RepairKit/run.ts").then((m) => (agent: Agent) => m.runRepair(agent)),
  routes: () =>
    Promise.all([
      import("../handlers/ScheduledQueryPack/wiring.ts").then((m) => m.queryExtensions()),
      import("../handlers/DatasetA/scan/routes.ts").then((m) => [m.scanRoutes()]),
      import("../handlers/Behavior/routes.ts").then((m) => [m.behaviorRoutes()]),
      import("../handlers/EPIPS_data/routes.ts").then((m) => [m.ipsRoutes()]),
    ]).then((lists) => lists.flat()),
  // `agent install --remove-incompatible`: CRT rules, fetched and run only during an install (docs/install.md).
  removeIncompatible: () =>
    import("../handlers/CRT/remove-incompatible.ts").then((m) => m.removeIncompatible),
  // Scanning requester, Live Protection (SXL, samples) and process reputation tags (docs/scanning.md);
  // it follows the effective config: a tenant policy that changes liveProtection.* rebuilds it
  // (docs/policy.md); scheduled-query results to their sinks (docs/queries.md); IPS: NFQUEUE packet path, self-disable
  // watchdog, NTP_OVERRIDES (docs/ips.md); telemetry upload (off unless telemetry.enabled,
  // docs/telemetry.md) and the self-help log reader (docs/selfhelp.md). Each is owned by the agent it serves.
  // Kernel sensors start first (their bus feeds the others); on-access scanning and Behavior's feed
  // after the scanning service (docs/sensors.md).
  services: (ctx) =>
    Promise.all([
      import("../core/sensors/service.ts").then((m) => [m.sensorsService(ctx)]),
      import("../handlers/DatasetA/scan/effective.ts").then((m) => [
        m.effectiveScanningService(ctx, ctx.api.effective),
      ]),
      import("../handlers/ScheduledQueryPack/wiring.ts").then((m) => m.queryServices(ctx)),
      import("../handlers/EPIPS_data/agent-service.ts").then((m) => [m.ipsService(ctx)]),
      import("../handlers/TELEMSUP/wiring.ts").then((m) => [m.telemetryService(ctx)]),
      import("../handlers/ESH/wiring.ts").then((m) => [m.selfHelpService(ctx)]),
      import("../handlers/DatasetA/on-access-service.ts").then((m) => [m.onAccessService(ctx)]),
      import("../handlers/Behavior/bus-feed.ts").then((m) => [m.behaviorFeedService(ctx)]),
      // APPFEED/USERAPPFEED results → the agent's exclusions; reruns on dpkg/rpm changes and hourly.
      import("../handlers/APPFEED/feed.ts").then((m) => [m.appfeedFeed(ctx)]),
      // events.sinks: agent events into the same stores as query results (docs/sinks.md).
      import("../plugins/sinks/events-service.ts").then((m) => m.eventSinkServices(ctx)),
    ]).then((lists) => lists.flat()),
});

const main = defineCommand({
  meta: { name: "agent", version: VERSION, description: "Outpost endpoint agent" },
  subCommands: {
    run: () => import("../core/cli/agent/run.ts").then((m) => m.default),
    status: () => import("../core/cli/agent/status.ts").then((m) => m.default),
    update: () => import("../core/cli/agent/update.ts").then((m) => m.default),
    content: () => import("../core/cli/agent/content.ts").then((m) => m.default),
    events: () =>
      import("../handlers/Behavior/cli-agent-events.ts").then((m) =>
        m.eventsWithReplay(() => import("../core/cli/agent/events.ts").then((e) => e.default)),
      ),
    metrics: () => import("../core/cli/agent/metrics.ts").then((m) => m.default),
    handlers: () => import("../core/cli/agent/handlers.ts").then((m) => m.default),
    openapi: () => import("../core/cli/agent/openapi.ts").then((m) => m.default),
    hmpa: () =>
      Promise.all([
        import("../handlers/Hmpa_data/cli-agent-hmpa.ts"),
        import("../core/cli/agent/session.ts"),
      ]).then(([hmpa, session]) => session.handlerCommand(hmpa.makeHmpaCommand)),
    version: () => import("../core/cli/agent/version.ts").then((m) => m.default),
    config: () => import("../core/cli/agent/config.ts").then((m) => m.default),
    flags: () => import("../core/cli/agent/flags.ts").then((m) => m.default),
    enroll: () => import("../core/cli/agent/enroll.ts").then((m) => m.default),
    policy: () => import("../handlers/RemapperRules/cli-agent-policy.ts").then((m) => m.default),
    install: () => import("../core/cli/agent/install.ts").then((m) => m.default),
    uninstall: () => import("../core/cli/agent/uninstall.ts").then((m) => m.default),
    "software-switch": () => import("../core/cli/agent/software-switch.ts").then((m) => m.default),
    telemetry: () => import("../handlers/TELEMSUP/cli-agent-telemetry.ts").then((m) => m.default),
    selfhelp: () =>
      Promise.all([
        import("../handlers/ESH/cli-agent-selfhelp.ts"),
        import("../core/cli/agent/session.ts"),
      ]).then(([esh, session]) => session.handlerCommand(esh.makeSelfhelpCommand)),
    host: () => import("../core/cli/agent/host.ts").then((m) => m.default),
    query: () =>
      Promise.all([
        import("../handlers/ScheduledQueryPack/cli-agent-query.ts"),
        import("../core/cli/agent/session.ts"),
      ]).then(([q, session]) => session.handlerCommand(q.makeQueryCommand)),
    "query-worker": () =>
      import("../handlers/ScheduledQueryPack/cli-agent-query-worker.ts").then((m) => m.default),
    scan: () => import("../handlers/DatasetA/scan/cli-agent-scan.ts").then((m) => m.default),
    rules: () => import("../handlers/Behavior/cli-agent-rules.ts").then((m) => m.default),
    exclusions: () => import("../core/cli/agent/exclusions.ts").then((m) => m.default),
    appfeed: () => import("../handlers/APPFEED/cli-agent-appfeed.ts").then((m) => m.default),
    "run-repair": () => import("../handlers/RepairKit/cli-agent-run-repair.ts").then((m) => m.default),
    ips: () => import("../handlers/EPIPS_data/cli-agent-ips.ts").then((m) => m.default),
    rep: () =>
      Promise.all([
        import("../handlers/LocalRepData/cli-agent-rep.ts"),
        import("../core/cli/agent/session.ts"),
      ]).then(([rep, session]) => session.handlerCommand(rep.makeRepCommand)),
  },
});

await runCli(main, { version: versionLine("outpost-agent") });
