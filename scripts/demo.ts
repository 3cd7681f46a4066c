/**
 * `npm start`: a working Outpost on embedded defaults, from the binaries in
 * dist/. It plays both sides: the vendor (dev keys, pack, publish, serve a
 * local repository) and the endpoint (agent with its control plane), plus a
 * small receiver that prints the alerts the agent raises. Every content type
 * in examples/ is installed and exercised: a scan finding the example
 * signature, a reputation answer, Behavior detections from replayed events,
 * a scheduled query's result in the results sink, and a self-repair dry run
 * against the agent's own config. Everything lives under ./demo and is made
 * fresh on each start. Ctrl-C stops it all.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
// bench/footprint.ts runs the demo in a directory of its own, with config overrides of its own.
const DEMO = process.env.OUTPOST_DEMO_DIR ? resolve(process.env.OUTPOST_DEMO_DIR) : join(ROOT, "demo");
// bench/footprint.ts may run the demo on binaries built elsewhere (an earlier commit, for a same-run baseline).
const BIN = process.env.OUTPOST_DEMO_BIN_DIR ? resolve(process.env.OUTPOST_DEMO_BIN_DIR) : join(ROOT, "dist");
const AGENT = join(BIN, "agent");
const CTL = join(BIN, "contentctl");
const GROUP = "public-1";

/** Runs a CLI; exit codes other than `ok` (default: 0) stop the demo. */
function run(cmd: string[], opts: { quiet?: boolean; ok?: number[] } = {}): string {
  const r = Bun.spawnSync(cmd, {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, OUTPOST_LOG_QUIET: "1" },
  });
  if (!(opts.ok ?? [0]).includes(r.exitCode)) {
    process.stderr.write(`demo: ${cmd.join(" ")} failed (exit ${r.exitCode})\n${r.stderr}${r.stdout}`);
    process.exit(1);
  }
  const out = r.stdout.toString();
  if (!opts.quiet) process.stdout.write(out);
  return out;
}

function freePort(): number {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
  const port = s.port;
  s.stop(true);
  return port ?? 0;
}

if (!existsSync(AGENT) || !existsSync(CTL)) {
  console.error("demo: dist/agent or dist/contentctl missing; run `bun build.ts` first (npm start does)");
  process.exit(1);
}

rmSync(DEMO, { recursive: true, force: true });
mkdirSync(join(DEMO, "src/Hmpa_data"), { recursive: true });
/** `contentctl pack` of a folder as version 1 into demo/packages; returns the package's path. */
function packExample(type: string, src = `examples/${type}`): string {
  const out = join(DEMO, `packages/${type}-1.tar`);
  run([CTL, "pack", "--type", type, "--version", "1", "--keys", join(DEMO, "keys"), "--out", out, src]);
  return out;
}

const step = (s: string) => console.log(`\n\x1b[1m== ${s}\x1b[0m`);

step("vendor: development keys (root CA → intermediate → content signer, ECDSA P-384)");
run([CTL, "keys", "init", "--dir", join(DEMO, "keys")]);

step("vendor: build, pack and sign the example content");
run([
  CTL,
  "hmpa-build",
  "--in",
  "examples/Hmpa_data/thumbprints.txt",
  "--out",
  join(DEMO, "src/Hmpa_data/allowlist.bin"),
]);
mkdirSync(join(DEMO, "packages"), { recursive: true });
const pkg = packExample("Hmpa_data", join(DEMO, "src/Hmpa_data"));

step("vendor: encrypt and sign the example Lua rules (ProductRulesFeed, Behavior, RepairKit, APPFEED)");
const contentKey = join(DEMO, "content-key.json");
run([CTL, "rules", "keygen", "--out", contentKey, "--id", "demo"]);
const packages = [pkg];
for (const type of ["ProductRulesFeed", "Behavior", "RepairKit", "APPFEED"]) {
  const out = join(DEMO, `packages/${type}-1.tar`);
  run([
    CTL,
    "rules",
    "pack",
    `examples/${type}`,
    "--type",
    type,
    "--version",
    "1",
    "--key",
    contentKey,
    "--keys",
    join(DEMO, "keys"),
    "--out",
    out,
  ]);
  packages.push(out);
}

step("tenant: sign the administrator's USERAPPFEED rules with the tenant's own key (docs/exclusions.md)");
const tenantKeys = join(DEMO, "tenant-keys");
run([CTL, "keys", "init", "--dir", tenantKeys, "--name", "Demo Tenant"]);
{
  const out = join(DEMO, "packages/USERAPPFEED-1.tar");
  run([
    CTL,
    "rules",
    "pack",
    "examples/USERAPPFEED",
    "--type",
    "USERAPPFEED",
    "--version",
    "1",
    "--key",
    contentKey,
    "--keys",
    join(DEMO, "keys"),
    "--tenant-keys",
    tenantKeys,
    "--out",
    out,
  ]);
  packages.push(out);
}

step("vendor: sign the scanner's signatures, the reputation list and the scheduled queries");
mkdirSync(join(DEMO, "src/LocalRepData"), { recursive: true });
run([
  CTL,
  "rep",
  "build",
  "--hashes",
  "examples/LocalRepData/hashes.txt",
  "--out",
  join(DEMO, "src/LocalRepData/reputation.bin"),
]);
for (const [type, src] of [
  ["DatasetA", "examples/DatasetA"],
  ["LocalRepData", join(DEMO, "src/LocalRepData")],
  ["ScheduledQueryPack", "examples/ScheduledQueryPack"],
  // IPS signatures and the incompatible-module list (docs/ips.md); the IPS itself stays off by default.
  ["EPIPS_data", "examples/EPIPS_data"],
  ["NTP_OVERRIDES", "examples/NTP_OVERRIDES"],
] as const) {
  packages.push(packExample(type, src));
}

step(
  "vendor: sign the policy content (RemapperRules, Flags) and publish tenant policy + flags (docs/policy.md)",
);
for (const type of ["RemapperRules", "Flags"]) {
  packages.push(packExample(type));
}

step(
  "vendor: pack the telemetry settings (TELEMSUP), the self-help rules (ESH) and the incompatible-software rules (CRT)",
);
for (const type of ["TELEMSUP", "ESH", "CRT"]) {
  packages.push(packExample(type));
}
// AgentSoftware: the agent's own executable, released like content (docs/install.md, "Software updates").
// The example holds the descriptor; the executable is the one just built. This agent is not installed
// (no A/B slots, software.enabled off), so it installs and proves the package but switches nothing.
step("vendor: pack this build of the agent as AgentSoftware content");
{
  const src = join(DEMO, "AgentSoftware");
  mkdirSync(src, { recursive: true });
  copyFileSync(join(ROOT, "examples/AgentSoftware/software.json"), join(src, "software.json"));
  copyFileSync(AGENT, join(src, "agent"));
  packages.push(packExample("AgentSoftware", src));
}
step("vendor: pack the example ML model (MLModel, telemetry mode: scores go to metrics, never to a verdict)");
{
  const out = join(DEMO, "packages/MLModel-1.tar");
  run([
    CTL,
    "pack",
    "--type",
    "MLModel",
    "--version",
    "1",
    "--keys",
    join(DEMO, "keys"),
    "--out",
    out,
    "examples/MLModel",
  ]);
  packages.push(out);
}
const tenantArgs = ["--tenant", "default", "--repo", join(DEMO, "repo"), "--keys", join(DEMO, "keys")];
run([CTL, "policy", "set", ...tenantArgs, "examples/RemapperRules/policy/threat-protection.xml"]);
run([CTL, "flags", "set", ...tenantArgs, "onAccessBlock", "on"]);

step(`vendor: publish to release group ${GROUP}`);
for (const p of packages) {
  run([CTL, "publish", "--repo", join(DEMO, "repo"), "--group", GROUP, "--keys", join(DEMO, "keys"), p]);
}

// Alerts the agent raises (rejected updates, rollbacks) land here, as they would at the vendor and the admin.
const alerts = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const a = (await req.json()) as Record<string, unknown>;
    console.log(`\x1b[33mALERT\x1b[0m ${a.kind} ${a.type ?? ""} ${a.code}: ${a.reason}`);
    return new Response(null, { status: 204 });
  },
});

const repoPort = freePort();
step(`vendor: serve the repository on http://127.0.0.1:${repoPort}`);
const serve = Bun.spawn([CTL, "serve", "--repo", join(DEMO, "repo"), "--port", String(repoPort)], {
  cwd: ROOT,
  stdout: "inherit",
  stderr: "inherit",
});

// The endpoint's pinned root, apart from the vendor's keys (which hold private keys). It lives under
// the state dir because the self-repair host may only see STATE and /etc/outpost (the production
// place, which a demo does not write to), and it checks and backs up the trust store the agent uses.
const trust = join(DEMO, "state/trust/root.pem");
mkdirSync(join(DEMO, "state/trust"), { recursive: true, mode: 0o700 });
copyFileSync(join(DEMO, "keys/root.pem"), trust);

const { update: extraUpdate, ...extraConfig } = (
  process.env.OUTPOST_DEMO_CONFIG ? JSON.parse(process.env.OUTPOST_DEMO_CONFIG) : {}
) as { update?: object };
const config = {
  stateDir: join(DEMO, "state"),
  update: {
    repo: `http://127.0.0.1:${repoPort}`,
    group: GROUP,
    trust,
    intervalSeconds: 60,
    ...extraUpdate,
  },
  alerts: { urls: [`http://127.0.0.1:${alerts.port}/alerts`] },
  // Kernel sensors (docs/sensors.md): file events under this dir reach the Behavior rules.
  sensors: { files: { paths: [join(DEMO, "home/.ssh")] } },
  ...extraConfig,
};
mkdirSync(join(DEMO, "home/.ssh"), { recursive: true });
writeFileSync(join(DEMO, "agent.json"), `${JSON.stringify(config, null, 2)}\n`);

step("endpoint: provision the content key the Lua host groups decrypt rules with");
run([AGENT, "rules", "install-key", contentKey, "--state", config.stateDir]);
step("endpoint: trust the tenant's key for USERAPPFEED only");
run([AGENT, "appfeed", "trust-tenant", join(tenantKeys, "root.pem"), "--state", config.stateDir]);

step("endpoint: start the agent (update loop + control plane on 127.0.0.1)");
const agent = Bun.spawn([AGENT, "run", "--config", join(DEMO, "agent.json")], {
  cwd: ROOT,
  stdout: "inherit",
  stderr: "ignore",
});

let stopping = false;
async function stopAll(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    agent.kill("SIGTERM");
    serve.kill("SIGTERM");
    await Promise.all([agent.exited, serve.exited]);
    alerts.stop(true);
  }
  process.exit(code);
}
process.on("SIGINT", () => void stopAll(0));
process.on("SIGTERM", () => void stopAll(0));
agent.exited.then((c) => {
  if (!stopping) {
    console.error(`demo: agent exited with code ${c}`);
    void stopAll(1);
  }
});

// The agent advertises its control plane in the state dir once it is listening.
for (let i = 0; i < 200 && !existsSync(join(config.stateDir, "control.json")); i++) await Bun.sleep(50);

step("endpoint: ask the agent to update now (it also polls every 60 s with jitter)");
run([AGENT, "update", "--state", config.stateDir]);
step("endpoint: status");
run([AGENT, "status", "--state", config.stateDir]);
step("endpoint: ask the Hmpa_data handler about a thumbprint from the example allowlist");
const first = (await Bun.file(join(ROOT, "examples/Hmpa_data/thumbprints.txt")).text())
  .split("\n")
  .find((l) => l.trim() && !l.startsWith("#"))
  ?.trim();
if (first) run([AGENT, "hmpa", "check", first, "--state", config.stateDir]);
step("endpoint: effective configuration from the tenant policy, and feature flags");
run([AGENT, "config", "show", "--config", join(DEMO, "agent.json"), "--key", "liveProtection"]);
run([AGENT, "flags", "--config", join(DEMO, "agent.json")]);
step("endpoint: IPS status (signatures loaded; the IPS itself is off until 'agent ips enable', docs/ips.md)");
run([AGENT, "ips", "status", "--state", config.stateDir]);
step("endpoint: self-help findings (ESH rules over the agent's own log, STATE/logs/agent.log)");
run([AGENT, "selfhelp", "--state", config.stateDir]);
step("endpoint: a real write the file sensor sees: the authorized_keys rule (BEH-009) fires");
writeFileSync(join(DEMO, "home/.ssh/authorized_keys"), "ssh-ed25519 AAAA demo\n");
await Bun.sleep(1500);
const seen = run([AGENT, "events", "--json", "--state", config.stateDir], { quiet: true })
  .split("\n")
  .filter((l) => l.includes('"detection"') && l.includes("authorized_keys"));
console.log(
  seen.length ? seen[seen.length - 1] : "(no detection: see `agent status --json` .sensors for why)",
);

const SAMPLE = "examples/samples/detected-on-purpose.txt";
step(`endpoint: scan ${SAMPLE} with the DatasetA example signature (exit 1: found)`);
run([AGENT, "scan", SAMPLE, "--state", config.stateDir], { ok: [1] });
step(
  "endpoint: the installed ML model and its counters (telemetry mode: scores counted in /metrics, no verdict)",
);
run([AGENT, "handlers", "call", "MLModel", "models", "--state", config.stateDir]);
step("endpoint: what LocalRepData knows about that file");
run([AGENT, "rep", SAMPLE, "--state", config.stateDir]);
step("endpoint: replay recorded process events through the Behavior rules");
run([AGENT, "events", "replay", "examples/Behavior/events.jsonl", "--state", config.stateDir]);
step("endpoint: the exclusions APPFEED and USERAPPFEED generated for the applications installed here");
run([AGENT, "exclusions", "--state", config.stateDir]);

step("endpoint: the scheduled queries' first results in the results sink");
const results = join(config.stateDir, "query-results/results.log");
const deadline = Date.now() + 60_000;
while (Date.now() < deadline && !(existsSync(results) && statSync(results).size > 0)) await Bun.sleep(250);
if (existsSync(results) && statSync(results).size > 0) {
  const lines = readFileSync(results, "utf8").trim().split("\n");
  console.log(`${results}: ${lines.length} line(s); the first:\n${lines[0]}`);
} else {
  console.log(`no query results in ${results} after 60 s; see ./dist/agent query --help and docs/queries.md`);
}

step("endpoint: self-repair dry run, offline checks against the config the agent runs with");
run([AGENT, "run-repair", "--dry-run", "--state", config.stateDir], { ok: [0, 3] });

// CRT is on-demand: the running agent never installs it; `agent install` fetches it, runs it, drops it (docs/install.md).
step("endpoint: dry run of `agent install --remove-incompatible` into demo/install-root (root only)");
if (process.getuid?.() === 0) {
  run([
    AGENT,
    "install",
    "--root",
    join(DEMO, "install-root"),
    "--repo",
    config.update.repo,
    "--group",
    GROUP,
    "--trust",
    trust,
    "--remove-incompatible",
    "--dry-run",
  ]);
} else console.log("skipped: agent install needs root (owners and modes are part of the install)");

step("vendor: version 2 of Hmpa_data, signed but not yet published (for the tamper exercise below)");
run([
  CTL,
  "pack",
  "--type",
  "Hmpa_data",
  "--version",
  "2",
  "--keys",
  join(DEMO, "keys"),
  "--out",
  join(DEMO, "packages/Hmpa_data-2.tar"),
  join(DEMO, "src/Hmpa_data"),
]);

console.log(`
Outpost is running. Try, in another terminal:
  ./dist/agent events replay examples/Behavior/events.jsonl --state demo/state   # feed recorded events
  ./dist/agent events --follow --state demo/state    # detections, updates, rejections as they happen
  ./dist/agent rules stats --state demo/state        # per-rule telemetry
  ./dist/agent selfhelp --json --state demo/state    # self-help findings (KB articles matching the logs)
  ./dist/agent scan examples/samples --state demo/state
  ./dist/agent query "SELECT name, version FROM os_version" --state demo/state
  ./dist/agent run-repair --dry-run --state demo/state
  ./dist/agent status --state demo/state            # health, versions, last errors (add --json)
  ./dist/agent status --json --state demo/state | jq .sensors   # kernel sensors in use, events/s, drops
  ./dist/agent content list --state demo/state
  sudo ./dist/agent ips enable --state demo/state    # NFQUEUE on ports 80/8080 (root; docs/ips.md)
  ./dist/agent hmpa check 'StackPivot:deadbeef' --state demo/state
  ./dist/agent update --state demo/state            # run an update cycle now
  ./dist/agent content rollback Hmpa_data --state demo/state
Tamper with a package on its way to the agent to watch a rejection and an alert (v1 keeps serving):
  ./dist/contentctl publish --repo demo/repo --group ${GROUP} --keys demo/keys demo/packages/Hmpa_data-2.tar
  printf 'x' | dd of=$(ls demo/repo/packages/Hmpa_data/Hmpa_data-2-*.tar) bs=1 seek=3000 conv=notrunc
  ./dist/agent update --state demo/state            # exit 3: UPD_HASH_MISMATCH, v2 refused
Ctrl-C stops the agent and the repository server.`);
