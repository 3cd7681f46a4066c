/**
 * Activation on a live system: only when installing into "/" and systemd is
 * PID 1 (not in containers, CI or a `--root` image). Enable + start, then
 * wait — with a deadline, no fixed sleep — until the agent's control plane
 * answers /v1/health.
 */
import { readFileSync } from "node:fs";
import { ControlClient } from "../control/client.ts";
import { InstallError } from "../errors.ts";
import { LAYOUT } from "./layout.ts";

export function systemdIsPid1(): boolean {
  try {
    return readFileSync("/proc/1/comm", "utf8").trim() === "systemd";
  } catch {
    return false;
  }
}

function systemctl(...args: string[]): string {
  const r = Bun.spawnSync(["systemctl", ...args], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) {
    throw new InstallError("INST_SYSTEMCTL", `systemctl ${args.join(" ")}: ${r.stderr.toString().trim()}`);
  }
  return r.stdout.toString().trim();
}

export async function enableAndStart(deadlineMs = 60_000): Promise<{ healthy: boolean; ms: number }> {
  const t0 = performance.now();
  systemctl("daemon-reload");
  systemctl("enable", LAYOUT.unitName);
  // restart, not start: a reinstall that replaced the binary or config must run the new one.
  systemctl("restart", LAYOUT.unitName);
  let last = "";
  while (performance.now() - t0 < deadlineMs) {
    try {
      const client = await ControlClient.fromStateDir(LAYOUT.stateDir);
      const h = await client.health();
      if (h.status) return { healthy: true, ms: Math.round(performance.now() - t0) };
    } catch (e) {
      last = (e as Error).message;
    }
    await Bun.sleep(200);
  }
  throw new InstallError(
    "INST_UNHEALTHY",
    `${LAYOUT.unitName} did not answer on its control plane within ${deadlineMs / 1000} s (${last}); see journalctl -u outpost`,
  );
}

export function disableAndStop(): void {
  Bun.spawnSync(["systemctl", "disable", "--now", LAYOUT.unitName], { stdout: "ignore", stderr: "ignore" });
  systemctl("daemon-reload");
}

/**
 * The software-switch probe on a live host: restart the unit onto the new
 * slot and wait until its control plane answers; the caller's deadline
 * aborts it. Content of the health check is the same as install's.
 */
/**
 * Healthy means what the issue asks of a new build: its control plane answers, an update cycle it runs
 * on request succeeds, and none of its host processes is crash-looping. Polled until the caller's
 * deadline aborts it.
 */
export function serviceProbe(): (signal: AbortSignal) => Promise<void> {
  return async (signal) => {
    systemctl("restart", LAYOUT.unitName);
    let last = "";
    while (!signal.aborted) {
      try {
        const client = await ControlClient.fromStateDir(LAYOUT.stateDir);
        const verdict = judgeNewAgent(await client.update(), (await client.status()).hosts ?? []);
        if (verdict === null) return;
        last = verdict;
      } catch (e) {
        last = (e as Error).message;
      }
      await Bun.sleep(500);
    }
    throw new Error(`the new agent was not healthy (${last})`);
  };
}

/** Pure part of the live probe: null when healthy, else why not. */
export function judgeNewAgent(
  cycle: { ok: boolean; rejected: { code: string }[] },
  hosts: { group: string; state: string }[],
): string | null {
  if (!cycle.ok)
    return `its update cycle failed (${cycle.rejected.map((r) => r.code).join(", ") || "no detail"})`;
  const bad = hosts.filter((h) => h.state === "crash-looping");
  if (bad.length) return `host ${bad.map((h) => h.group).join(", ")} is crash-looping`;
  return null;
}

/** After a rollback on a live host: run the restored slot. */
export async function restartService(): Promise<void> {
  systemctl("restart", LAYOUT.unitName);
}
