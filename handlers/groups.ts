/**
 * The built-in host groups and the most each allows its handlers to
 * declare (rule G1, core/host/policy.ts). One group is one sandboxed
 * process; a handler asking for more than its group allows is refused at
 * build time (build.ts, groups.test.ts) and at load. Rationale per group in
 * docs/handler-host.md ("Groups").
 *
 * SHARED: groups whose allowance is identical (no file system, no network,
 * no exec, runAs agent) and whose handlers take no hostile bytes at volume
 * run in one process (rule G3, core/host/policy.ts; issue 21, Footprint —
 * each Bun process costs ~10–20 MiB). The group stays the policy and
 * documentation unit; a crash of the shared process restarts all of them.
 * `scanner` (file bytes) and `ips` (packets) keep processes of their own
 * although their allowance is the same: an exploit of their parsers must
 * not be able to forge configuration, flags or allowlist answers
 * (docs/handler-host.md, "Shared processes").
 */
import { defineGroup, type GroupPolicy } from "../core/host/policy.ts";

const SHARED = "shared";

export const builtinGroups: GroupPolicy[] = [
  defineGroup({
    name: "scanner",
    description: "DatasetA, LocalRepData, ML: parse hostile bytes callers send over IPC; touch nothing else",
    runAs: "agent",
    net: "none",
    exec: false,
  }),
  defineGroup({
    name: "behavior",
    description: "Behavior, ProductRulesFeed: rule engines fed by events; may read process and system state",
    runAs: "agent",
    fs: { read: ["/proc/**", "/sys/**", "/etc/passwd", "/etc/group", "/etc/os-release"] },
    net: "none",
    exec: false,
  }),
  defineGroup({
    // osquery parity needs root: other users' /proc/PID/fd and environ, crontabs, dpkg state and the
    // `file`/`hash` tables over any path. Root here is read-only root: Landlock read-only everywhere,
    // no network (empty netns), and a bounding set of dac_read_search + sys_ptrace only.
    // exec: the watchdog runs each query in a child process of the agent's own executable, because
    // SIGKILL is the only way to stop SQLite spinning in C (a Worker thread's terminate() does not
    // reach it); the child inherits this sandbox (docs/queries.md, "Watchdog").
    name: "query",
    description: "ScheduledQueryPack: osquery-compatible tables over the live system, read-only",
    runAs: "root",
    fs: { read: ["/**"] },
    net: "none",
    exec: true,
    // Landlock hides other processes' /proc links, environ and maps from any sandboxed host; the
    // supervisor reads just those for this group (core/host/proc-view.ts).
    hostView: true,
    capabilities: ["dac_read_search", "sys_ptrace"],
  }),
  defineGroup({
    name: "repair",
    description: "RepairKit: checks and fixes the agent's own installation, as root",
    runAs: "root",
    fs: {
      read: ["/etc/outpost/**", "/proc/**"],
      // biome-ignore lint/suspicious/noTemplateCurlyInString: path placeholders, expanded at run time
      write: ["${stateDir}/**", "${installDir}/**", "/etc/outpost/**"],
    },
    net: "none",
    exec: true,
    agent: true,
    capabilities: ["chown", "fowner", "dac_override", "dac_read_search"],
  }),
  defineGroup({
    // Pure functions of content + the input the supervisor passes in (wave3.md "Where things run"):
    // policy documents in, config values and flag words out; the supervisor applies them.
    name: "config",
    process: SHARED,
    description: "RemapperRules, Flags: policy → configuration; no filesystem, no network, no exec",
    runAs: "agent",
    net: "none",
    exec: false,
  }),
  defineGroup({
    // Packets arrive from the supervisor's NFQUEUE reader over IPC; verdicts go back (docs/ips.md).
    name: "ips",
    description: "EPIPS_data, NTP_OVERRIDES: match queued packets and check module lists; touch nothing else",
    runAs: "agent",
    net: "none",
    exec: false,
  }),
  defineGroup({
    // APPFEED/USERAPPFEED (docs/exclusions.md): "read-only access to the registry and filesystem".
    // Landlock makes the listed paths read-only; exec exists only for the read-only query tools
    // the Lua API allows (dpkg-query, rpm -q, snap list, flatpak list, systemctl show).
    name: "appfeed",
    description: "APPFEED, USERAPPFEED: detect installed applications, read-only; propose exclusions",
    runAs: "agent",
    fs: {
      read: [
        "/var/lib/dpkg/**",
        "/var/lib/rpm/**",
        "/usr/share/applications/**",
        "/opt/**",
        "/etc/**",
        "/var/lib/snapd/**",
        "/var/lib/flatpak/**",
        "/snap/**",
      ],
    },
    net: "none",
    exec: true,
  }),
  defineGroup({
    name: "hmpa",
    process: SHARED,
    description: "Hmpa_data: an allowlist looked up in memory; needs nothing",
    runAs: "agent",
    net: "none",
    exec: false,
  }),
  defineGroup({
    // Pure checks of TELEMSUP content; the upload is the supervisor's (docs/telemetry.md).
    name: "telemetry",
    process: SHARED,
    description: "TELEMSUP: validates telemetry settings; needs nothing",
    runAs: "agent",
    net: "none",
    exec: false,
  }),
  defineGroup({
    // Proves AgentSoftware packages from their bytes; the A/B switch is the supervisor's (docs/install.md).
    name: "software",
    process: SHARED,
    description: "AgentSoftware: checks the agent executable's package; needs nothing",
    runAs: "agent",
    net: "none",
    exec: false,
  }),
  defineGroup({
    // No file system either: the supervisor reads the logs the rules name and streams their lines
    // here, so content can never widen what this process reads (docs/selfhelp.md).
    name: "esh",
    process: SHARED,
    description: "ESH: self-help regular expressions over log lines the supervisor streams in",
    runAs: "agent",
    net: "none",
    exec: false,
  }),
  defineGroup({
    // The most privileged group lives the shortest: it exists only while `agent install
    // --remove-incompatible` runs CRT (never under the service), because apt-get remove and
    // systemctl disable need root, exec and write access to the whole system (docs/install.md).
    name: "install",
    description: "CRT: removes known-incompatible software during agent install; root, exec, write",
    runAs: "root",
    fs: { read: ["/**"], write: ["/**"] },
    net: "none",
    exec: true,
    capabilities: [
      "chown",
      "dac_override",
      "dac_read_search",
      "fowner",
      "fsetid",
      "kill",
      "setgid",
      "setuid",
      "audit_write",
      "sys_resource",
    ],
  }),
];
