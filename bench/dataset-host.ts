/**
 * A DatasetA release held in memory, loaded into a real sandboxed scanner
 * host the way the agent loads it (validate, prepare, commit) — what the
 * on-access and transfer benches scan through, without a store or an update.
 */
import { parseConfig } from "../core/config.ts";
import { type ContentView, viewOverBytes } from "../core/handler/contract.ts";
import { HostManager } from "../core/host/manager.ts";
import type { Logger } from "../core/log.ts";
import { defaultRegistry } from "../handlers/index.ts";

export async function datasetAHost(
  files: Record<string, Uint8Array>,
  stateDir: string,
  log: Logger,
): Promise<{ hosts: HostManager; call: (type: string, method: string, args: unknown) => Promise<unknown> }> {
  const view: ContentView = viewOverBytes({
    type: "DatasetA",
    version: 1,
    signingTime: new Date().toISOString(),
    files: Object.keys(files),
    read: (p) => files[p]!,
    readText: (p) => new TextDecoder().decode(files[p]!),
  });
  const hosts = new HostManager({
    stateDir,
    registry: defaultRegistry(),
    log,
    config: parseConfig({ stateDir }).hosts,
    emit() {},
    onContentFailure: async () => null,
  });
  await hosts.validate("DatasetA", view);
  await hosts.commit(await hosts.prepare("DatasetA", view));
  return { hosts, call: (t, m, a) => hosts.call(t, m, a) };
}
