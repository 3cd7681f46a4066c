/**
 * `agent run`: the long-running agent. Takes the state lock, loads installed
 * content, starts the update loop and the control plane, and on SIGINT or
 * SIGTERM stops both cleanly (control plane first, so no request races the
 * shutdown).
 */
import { heapSize } from "bun:jsc";
import { defineCommand } from "citty";
import { startHeartbeat } from "../../agent/heartbeat.ts";
import { idleCollections } from "../../control/http-metrics.ts";
import { startControlPlane } from "../../control/server.ts";
import { collectIdle, IdleGc } from "../../host/idle-gc.ts";
import { log } from "../../log.ts";
import { attachLogFiles } from "../../logs/files.ts";
import { VERSION } from "../../version.ts";
import { printText } from "../output.ts";
import { absolutePaths, recordRunConfig } from "./run-config.ts";
import {
  type AgentService,
  agentArgs,
  agentConfigFile,
  createAgent,
  loadAgentConfig,
  wiredRoutes,
  wiredServices,
} from "./session.ts";

export default defineCommand({
  meta: {
    name: "run",
    description: "Run the agent: update loop + local control plane, until SIGINT/SIGTERM",
  },
  args: {
    ...agentArgs,
    repo: { type: "string", valueHint: "URL_OR_DIR", description: "content repository (overrides config)" },
    group: { type: "string", description: "update group (overrides config)" },
    trust: {
      type: "string",
      valueHint: "ROOT.pem",
      description: "trusted root certificates (overrides config)",
    },
    port: { type: "string", description: "control plane TCP port (default: config, 0 = any free port)" },
  },
  async run({ args }) {
    const overrides = {
      update: { repo: args.repo, group: args.group, trust: args.trust },
      control: { port: args.port === undefined ? undefined : Number(args.port) },
    };
    // Listened for from the start: a stop asked for while the agent still starts (systemd stopping
    // a unit it just started, a script that saw control.json appear) lets the start finish and then
    // stops cleanly. The default action would kill it half started, with hosts up and no clean-up;
    // a second signal still does, as before.
    const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
      process.once("SIGINT", () => resolve("SIGINT"));
      process.once("SIGTERM", () => resolve("SIGTERM"));
    });
    const config = loadAgentConfig(args, overrides);
    // The JSON-lines log also goes to rotating files (what self-help rules and admins read later).
    const logFiles = attachLogFiles(log, config);
    // Handlers run in their hosts: the supervisor needs their manifests, not their code (session.ts).
    const agent = await createAgent(config, { deferHandlerCode: true });
    await agent.start({ loop: true });
    // Offline commands given only --state find this config (core/cli/agent/run-config.ts).
    recordRunConfig(config.stateDir, agentConfigFile(args) ?? undefined, absolutePaths(overrides));
    // Fleet heartbeats let the vendor's release engine halt a rollout that hurts hosts.
    const heartbeat = await startHeartbeat(agent, config);
    // Optional features: one that fails to start is logged and left out; protection goes on.
    const services: AgentService[] = [];
    for (const service of await wiredServices({ config, api: agent, events: agent.events })) {
      try {
        await service.start();
        services.push(service);
      } catch (e) {
        log
          .child({ component: "cli" })
          .error("service failed to start", { service: service.name, error: (e as Error).message });
      }
    }
    const stopServices = async () => {
      for (const service of services.reverse()) {
        await Promise.resolve(service.stop()).catch((e) =>
          log
            .child({ component: "cli" })
            .warn("service failed to stop", { service: service.name, error: (e as Error).message }),
        );
      }
    };
    let plane: Awaited<ReturnType<typeof startControlPlane>>;
    try {
      plane = await startControlPlane({
        api: agent,
        stateDir: config.stateDir,
        host: config.control.host,
        port: config.control.port,
        allowRemote: config.control.allowRemote,
        extensions: await wiredRoutes(),
        events: agent.events,
      });
    } catch (e) {
      await stopServices();
      await heartbeat?.stop();
      await agent.stop();
      throw e;
    }
    // One line on stdout that supervisors and scripts can parse for the control URL.
    printText(
      JSON.stringify({
        ts: new Date().toISOString(),
        level: "info",
        msg: "agent running",
        version: VERSION,
        pid: process.pid,
        stateDir: config.stateDir,
        control: plane.url,
        socket: plane.socket ?? null,
      }),
    );

    // With Bun's GC timer off (the systemd unit), nothing collects the supervisor's garbage until
    // allocation pressure: start-up (content loaded, services and the control plane up) and later
    // work (update cycles, detections, API calls) left ~7 MiB of PSS behind. Like the hosts
    // (core/host/idle-gc.ts): one full collection once start-up is quiet, then one after each
    // stretch of activity the event stream shows, at most every 30 s.
    const gc = new IdleGc({
      collect: (idle) => {
        collectIdle(idle);
        idleCollections.inc();
      },
      // A real collection: weighed like the default one (idle-gc.ts).
      heapBytes: heapSize,
    });
    gc.soon();
    const stopGc = agent.events.subscribe(() => gc.touch());

    const signal = await stopSignal;
    const shutdownLog = log.child({ component: "cli" });
    shutdownLog.info("stopping agent", { signal });
    // A second signal during shutdown is ignored rather than killing a half-finished content switch.
    const ignore = () => shutdownLog.warn("already stopping");
    process.on("SIGINT", ignore);
    process.on("SIGTERM", ignore);
    try {
      await plane.stop();
      await stopServices();
      await heartbeat?.stop();
      await agent.stop();
    } finally {
      process.off("SIGINT", ignore);
      process.off("SIGTERM", ignore);
    }
    stopGc();
    gc.stop();
    shutdownLog.info("agent stopped", { signal });
    logFiles.detach();
  },
});
