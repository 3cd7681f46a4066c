/**
 * Hostile handlers for the sandbox tests (never registered in production).
 * They ignore their capability objects and go straight for ambient
 * authority — node:fs, node:net, Bun.spawn, signals — so only the OS
 * sandbox of their host process stands in the way. Each probe reports what
 * happened instead of throwing, so the test sees every denial and its errno.
 *
 * The allowed group's paths and port come from the environment
 * (OUTPOST_TEST_PROBE_DIR, OUTPOST_TEST_PROBE_PORT), which host processes
 * inherit, so supervisor and host build identical manifests.
 */
import { ftruncateSync, promises, readFileSync, writeFileSync, writeSync } from "node:fs";
import { connect } from "node:net";
import { dirname, join } from "node:path";
import { defineHandler, type HandlerManifestInput } from "../../core/handler/contract.ts";
import { HandlerRegistry } from "../../core/handler/registry.ts";
import { defineGroup } from "../../core/host/policy.ts";

export const PROBE_DIR = process.env.OUTPOST_TEST_PROBE_DIR ?? "/nonexistent-outpost-probe";
export const PROBE_PORT = Number(process.env.OUTPOST_TEST_PROBE_PORT ?? "9");

export interface Attempt {
  ok: boolean;
  code?: string;
  message?: string;
}

export interface ProbeReport {
  uid: number;
  read: Attempt;
  /** The same file read asynchronously: on Bun's thread pool, which the sandbox must cover too. */
  readAsync: Attempt;
  readBunFile: Attempt;
  writeOutside: Attempt;
  connect: Attempt;
  exec: Attempt;
  signalSupervisor: Attempt;
  writeWorkDir: Attempt;
  /** The shared transfer region the supervisor passed (core/host/shared-transfer.ts), if any. */
  transfer: string | null;
  /** Writing into it, and shrinking it under the supervisor (fd 3): both must be refused. */
  writeTransfer: Attempt;
  truncateTransfer: Attempt;
}

async function attempt(f: () => unknown): Promise<Attempt> {
  try {
    await f();
    return { ok: true };
  } catch (e) {
    const err = e as { code?: string; message?: string };
    return { ok: false, code: err.code ?? "UNKNOWN", message: String(err.message ?? e).slice(0, 300) };
  }
}

async function probe(args: { file: string; port: number }): Promise<ProbeReport> {
  return {
    uid: process.getuid?.() ?? -1,
    read: await attempt(() => readFileSync(args.file)),
    readAsync: await attempt(() => promises.readFile(args.file)),
    readBunFile: await attempt(() => Bun.file(args.file).text()),
    writeOutside: await attempt(() => writeFileSync(join(dirname(args.file), "written-by-host"), "x")),
    connect: await attempt(
      () =>
        new Promise<void>((resolve, reject) => {
          const s = connect({ host: "127.0.0.1", port: args.port });
          s.once("connect", () => {
            s.destroy();
            resolve();
          });
          s.once("error", reject);
        }),
    ),
    exec: await attempt(() => {
      const r = Bun.spawnSync(["/bin/true"]);
      if (r.exitCode !== 0) throw Object.assign(new Error(`exit ${r.exitCode}`), { code: "EXIT" });
    }),
    signalSupervisor: await attempt(() => process.kill(process.ppid, 0)),
    writeWorkDir: await attempt(() => writeFileSync(join(process.cwd(), "scratch"), "ok")),
    transfer: process.env.OUTPOST_HOST_TRANSFER ?? null,
    writeTransfer: await attempt(() => writeSync(3, new Uint8Array([0x58]), 0, 1, 0)),
    truncateTransfer: await attempt(() => ftruncateSync(3, 0)),
  };
}

function probeHandler(name: string, group: string, privileges: HandlerManifestInput["privileges"]) {
  return defineHandler<object>({
    manifest: { name, description: `sandbox probe (${group})`, group, privileges },
    validate() {},
    load: () => ({}),
    call: (_l, _method, args) => probe(args as { file: string; port: number }),
  });
}

const NOTHING = { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false } as const;

export const probeGroups = [
  defineGroup({
    name: "probe-none",
    description: "agent, nothing",
    runAs: "agent",
    net: "none",
    exec: false,
  }),
  defineGroup({ name: "probe-root", description: "root, nothing", runAs: "root", net: "none", exec: false }),
  defineGroup({
    name: "probe-allowed",
    description: "root, exactly what the probe needs",
    runAs: "root",
    fs: { read: [`${PROBE_DIR}/**`] },
    net: [`http:127.0.0.1:${PROBE_PORT}`],
    exec: true,
  }),
];

/** fs none, net none, exec false, as the unprivileged user. */
export const probeNone = probeHandler("ProbeNone", "probe-none", NOTHING);
/** The same declaration, but the host stays root: only Landlock and the netns stop it. */
export const probeRoot = probeHandler("ProbeRoot", "probe-root", { ...NOTHING, runAs: "root" });
/** Positive control: declares exactly what the probe does, so every attempt must succeed. */
export const probeAllowed = probeHandler("ProbeAllowed", "probe-allowed", {
  runAs: "root",
  fs: { mode: "read-only", paths: [`${PROBE_DIR}/**`] },
  net: [`http:127.0.0.1:${PROBE_PORT}`],
  exec: true,
});
/** Asks for exec in a group that allows nothing: refused before it sees content (G1). */
export const probeGreedy = probeHandler("ProbeGreedy", "probe-none", { ...NOTHING, exec: true });

export function probeRegistry(): HandlerRegistry {
  const r = new HandlerRegistry();
  for (const g of probeGroups) r.registerGroup(g);
  for (const h of [probeNone, probeRoot, probeAllowed, probeGreedy]) r.register(h, import.meta.url);
  return r;
}
