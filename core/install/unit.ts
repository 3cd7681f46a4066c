/**
 * The systemd unit. Pure: the text is a function of the layout, so a second
 * install writes the same bytes and changes nothing.
 *
 * Hardening, and why each option fits (docs/install.md, "The unit"):
 * - the supervisor stays root: it launches host groups that need root
 *   (query, repair), joins them to cgroups, runs NFQUEUE and nftables;
 * - ProtectSystem=strict + ReadWritePaths: the OS is read-only to the agent
 *   except its own state (logs live there), config (RepairKit fixes it) and binaries
 *   (A/B slots); CRT's apt-get runs only under `agent install`, never here;
 * - ProtectHome=read-only: scheduled queries hash files anywhere, but never write;
 * - PrivateTmp: nothing the agent does needs the shared /tmp;
 * - ProtectClock, ProtectHostname, RestrictRealtime, RestrictSUIDSGID,
 *   LockPersonality, SystemCallArchitectures=native: nothing in the agent
 *   sets the clock or host name, asks for real-time scheduling, makes
 *   set-uid files or runs foreign-ABI code. Not set, and why: MemoryDenyWriteExecute
 *   (Bun's JIT needs W+X pages), RestrictNamespaces (hosts use `unshare --net`),
 *   PrivateDevices/ProtectKernel* (on-access scanning, NFQUEUE and module checks
 *   need the real devices, /proc/sys and module lists);
 * - NoNewPrivileges is NOT set: every host process already gets
 *   no_new_privs from its own `setpriv --no-new-privs` launch wrapper, where
 *   it applies to content-driven code; set on the unit it would be inherited
 *   by the supervisor's root-side execs too (setpriv itself, apt/dpkg/systemctl
 *   called by RepairKit) and blocks the AppArmor/SELinux domain transitions
 *   and setuid helpers those may rely on, for no gain over the per-host flag;
 * - Restart=on-failure with a rate limit, KillMode=mixed: SIGTERM to the
 *   supervisor, which stops its hosts in order, SIGKILL to stragglers;
 * - ExecStartPre runs `software-switch --recover` from either slot, so a
 *   switch that died half way is undone even when the new build cannot start.
 */
import { LAYOUT } from "./layout.ts";

export function renderUnit(): string {
  return `# Written by \`agent install\`; \`agent uninstall\` removes it. Edit with \`systemctl edit outpost\`.
[Unit]
Description=Outpost endpoint agent
Documentation=https://outpost.invalid/docs/install.md
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=simple
# Boot-time recovery: a software switch interrupted past its deadline (power loss, a new build that
# never starts) is undone before the agent runs, by whichever slot's executable still works.
ExecStartPre=-/bin/sh -c 'for s in ${LAYOUT.slotA} ${LAYOUT.slotB}; do [ -x "$$s/agent" ] && "$$s/agent" software-switch --recover && exit 0; done; exit 0'
ExecStart=${LAYOUT.binary} run --config ${LAYOUT.config}
# No once-a-second GC timer in the idle supervisor; it collects when activity ends (core/host/idle-gc.ts).
Environment=BUN_GC_TIMER_DISABLE=1
Restart=on-failure
RestartSec=5s
KillMode=mixed
TimeoutStopSec=30s
UMask=0077
LimitNOFILE=65536
ProtectSystem=strict
ReadWritePaths=${LAYOUT.stateDir} ${LAYOUT.etcDir} ${LAYOUT.optDir}
ProtectHome=read-only
PrivateTmp=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
`;
}
