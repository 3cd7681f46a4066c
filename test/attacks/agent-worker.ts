/**
 * Runs one agent update cycle in a worker thread, for attacks that may block
 * the agent's thread outright (a synchronous read that never returns): the
 * test thread stays free to notice, to unblock the worker and to report.
 * Message in: { stateDir, repo, trust }; messages out: { started: true } once the agent runs,
 * then { report, live, version } or { error }.
 */
// First, so the logger (evaluated with the imports below) sees the test environment's quiet flag.
import "../preload.ts";
import { Agent } from "../../core/agent/runtime.ts";
import { parseConfig } from "../../core/config.ts";
import { liveText, TEST_GROUP, testRegistry } from "../fixtures/vendor.ts";

declare const self: Worker;

self.onmessage = async (event: MessageEvent<{ stateDir: string; repo: string; trust: string }>) => {
  const { stateDir, repo, trust } = event.data;
  const config = parseConfig({ stateDir, update: { repo, group: TEST_GROUP, trust } });
  const agent = new Agent({ config, registry: testRegistry() });
  try {
    await agent.start();
    // The test times only the cycle: start-up (host processes) is slow on a loaded box, not wedged.
    self.postMessage({ started: true });
    const report = await agent.update();
    const version = agent.content().find((c) => c.type === "TestText")?.version ?? null;
    self.postMessage({ report, live: await liveText(agent), version });
  } catch (e) {
    self.postMessage({ error: String(e) });
  } finally {
    await agent.stop();
  }
};
