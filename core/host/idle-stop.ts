/**
 * Stopping hosts that sit idle and hold nothing hot (issue 21, Footprint).
 * A Bun host process costs ~15–30 MiB of private memory even when it does
 * nothing; groups whose handlers are pure functions called now and then
 * (policy → configuration, telemetry settings, the install-time CRT, the
 * hourly self-repair pass) lose nothing by being stopped after
 * `afterSeconds` without traffic or CPU: the next call starts the host
 * again and reloads its installed content (HostManager.ready → start →
 * reload), as after a crash, but without counting one (exit reason
 * "shutdown"). Groups with live work — Behavior's rules on the event
 * stream, on-access scanning, the IPS queue, scheduled queries, the
 * allowlist in memory — are not listed by default.
 *
 * Config: `hosts.idleStop` (core/idle-stop-config.ts). One timer per host, re-armed from the host's last activity (the
 * watchdog's `activityAt`): no polling while the host is busy or idle.
 */
import type { HostProcess } from "./process.ts";

/** Arms the idle stop of one running host; returns a function that disarms it. */
export function armIdleStop(
  proc: HostProcess,
  afterMs: number,
  stop: () => void,
  now: () => number = Date.now,
): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const check = () => {
    timer = undefined;
    if (!proc.running) return;
    const quietFor = now() - (proc.watchdog?.activityAt ?? proc.startedAt);
    if (proc.channel.inFlight === 0 && quietFor >= afterMs) {
      stop();
      return;
    }
    timer = setTimeout(check, Math.max(100, afterMs - quietFor));
    timer.unref?.();
  };
  timer = setTimeout(check, afterMs);
  timer.unref?.();
  return () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
}
