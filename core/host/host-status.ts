/**
 * What `agent status` shows of each process host: its state, pid and uid,
 * the isolation layers that are really on (and notes for those that are
 * not), crashes, limits and current usage. Read-only over the manager's
 * records; the watchdog's last sample stands in for /proc on this hot path.
 */
import type { HostStatus } from "../agent/api.ts";
import type { GroupRec, ManagerContext } from "./records.ts";

/**
 * One entry per group. The groups that share a process (G3) each get its
 * pid, state, crashes, layers and limits, their own handlers, and
 * `process` naming it — a crash of that process is a crash of each of them.
 */
export function hostStatuses(ctx: ManagerContext, crashesInWindow: (g: GroupRec) => number): HostStatus[] {
  return [...ctx.groups.values()].flatMap((g) => {
    const shared = g.groups.length !== 1 || g.groups[0] !== g.name;
    const own = processStatus(ctx, g, crashesInWindow(g));
    if (!shared) return [own];
    return g.groups.map((group) => ({
      ...own,
      group,
      process: g.name,
      handlers: g.types.filter((t) => ctx.slots.get(t)?.group === group),
      notes: own.notes.filter((n) => !/ refused: /.test(n) || refusedIn(ctx, group, n)),
    }));
  });
}

function refusedIn(ctx: ManagerContext, group: string, note: string): boolean {
  const type = note.slice(0, note.indexOf(" refused: "));
  return ctx.slots.get(type)?.group === group;
}

function processStatus(ctx: ManagerContext, g: GroupRec, crashesInWindow: number): HostStatus {
  {
    // The watchdog samples every watchdogIntervalMs; status (a hot path) reads /proc only before the first sample.
    const sample = g.proc?.running ? (g.proc.lastSample ?? g.proc.sample()) : null;
    const l = g.launch?.layers;
    const ll = g.init?.landlock;
    const notes = [...(g.launch?.notes ?? [])];
    if (ll?.error) notes.push(`landlock: ${ll.error}`);
    if (ll && ll.abi > 0 && ll.abi < 4) notes.push(`landlock: ABI ${ll.abi} has no network rules (needs 4)`);
    if (ll?.missing.length) notes.push(`landlock: declared paths absent here: ${ll.missing.join(", ")}`);
    // From source only (the compiled agent refuses to run so): Bun's module loader started them.
    if (ll?.unrestrictedThreads?.length)
      notes.push(
        `landlock: threads started before the sandbox are not covered: ${ll.unrestrictedThreads.join(", ")}`,
      );
    if (g.cgroupNote) notes.push(`memory: ${g.cgroupNote}`);
    const refused = [...ctx.slots.values()].filter((s) => s.host === g.name && s.refused);
    for (const s of refused) notes.push(`${s.type} refused: ${s.refused!.message}`);
    return {
      group: g.name,
      isolation: "process",
      state: g.state,
      pid: g.proc?.running ? g.proc.pid : null,
      uid: g.init?.uid ?? null,
      user: g.launch?.user ?? null,
      handlers: [...g.types],
      restarts: g.restarts,
      crashesInWindow,
      lastCrash: g.lastCrash,
      startedAt: g.startedAt ? new Date(g.startedAt).toISOString() : null,
      layers: {
        uidDrop: !!l?.uidDrop,
        capabilities: !!l?.capabilities,
        netns: !!l?.netns,
        landlockFs: !!ll?.fs,
        landlockNet: !!ll?.net,
        landlockScope: !!ll?.scoped,
        rlimits: !!l?.rlimits,
        noNewPrivs: !!l?.noNewPrivs || !!ll?.fs,
        memory: g.cgroupDir ? "cgroup" : g.launch ? "watchdog" : "none",
        stateView: g.launch?.stateView ?? "none",
      },
      notes,
      limits: { ...g.limits },
      usage: sample ? { rssBytes: sample.rssBytes, cpuSeconds: sample.cpuSeconds } : null,
    } satisfies HostStatus;
  }
}
