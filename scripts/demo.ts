/**
 * `npm start`: a working Outpost on embedded defaults, from the binaries in
 * dist/. It plays both sides: the vendor (dev keys, pack, publish, serve a
 * local repository) and the endpoint (agent with its control plane), plus a
 * small receiver that prints the alerts the agent raises. Everything lives
 * under ./demo and is made fresh on each start. Ctrl-C stops it all.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const DEMO = join(ROOT, "demo");
const AGENT = join(ROOT, "dist/agent");
const CTL = join(ROOT, "dist/contentctl");
const GROUP = "public-1";

function run(cmd: string[], opts: { quiet?: boolean } = {}): string {
  const r = Bun.spawnSync(cmd, {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, OUTPOST_LOG_QUIET: "1" },
  });
  if (r.exitCode !== 0) {
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
const pkg = join(DEMO, "packages/Hmpa_data-1.tar");
mkdirSync(join(DEMO, "packages"), { recursive: true });
run([
  CTL,
  "pack",
  "--type",
  "Hmpa_data",
  "--version",
  "1",
  "--keys",
  join(DEMO, "keys"),
  "--out",
  pkg,
  join(DEMO, "src/Hmpa_data"),
]);

step("vendor: encrypt and sign the example Lua rules (ProductRulesFeed, Behavior, RepairKit)");
const contentKey = join(DEMO, "content-key.json");
run([CTL, "rules", "keygen", "--out", contentKey, "--id", "demo"]);
const packages = [pkg];
for (const type of ["ProductRulesFeed", "Behavior", "RepairKit"]) {
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

step(
  "vendor: sign the policy content (RemapperRules, Flags) and publish tenant policy + flags (docs/policy.md)",
);
for (const type of ["RemapperRules", "Flags"]) {
  const out = join(DEMO, `packages/${type}-1.tar`);
  run([
    CTL,
    "pack",
    "--type",
    type,
    "--version",
    "1",
    "--keys",
    join(DEMO, "keys"),
    "--out",
    out,
    `examples/${type}`,
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

const config = {
  stateDir: join(DEMO, "state"),
  update: {
    repo: `http://127.0.0.1:${repoPort}`,
    group: GROUP,
    trust: join(DEMO, "keys/root.pem"),
    intervalSeconds: 60,
  },
  alerts: { urls: [`http://127.0.0.1:${alerts.port}/alerts`] },
};
writeFileSync(join(DEMO, "agent.json"), `${JSON.stringify(config, null, 2)}\n`);

step("endpoint: provision the content key the Lua host groups decrypt rules with");
run([AGENT, "rules", "install-key", contentKey, "--state", config.stateDir]);

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

console.log(`
Outpost is running. Try, in another terminal:
  ./dist/agent events replay examples/Behavior/events.jsonl --state demo/state   # feed recorded events
  ./dist/agent events --follow --state demo/state    # detections, updates, rejections as they happen
  ./dist/agent rules stats --state demo/state        # per-rule telemetry
  ./dist/agent run-repair --dry-run --state demo/state
  ./dist/agent status --state demo/state            # health, versions, last errors (add --json)
  ./dist/agent content list --state demo/state
  ./dist/agent hmpa check 'StackPivot:deadbeef' --state demo/state
  ./dist/agent update --state demo/state            # run an update cycle now
  ./dist/agent content rollback Hmpa_data --state demo/state
Publish a new version (the agent picks it up on its next cycle or on 'agent update'):
  ./dist/contentctl pack --type Hmpa_data --version 2 --keys demo/keys --out demo/packages/Hmpa_data-2.tar demo/src/Hmpa_data
  ./dist/contentctl publish --repo demo/repo --group ${GROUP} --keys demo/keys demo/packages/Hmpa_data-2.tar
Tamper with it to watch a rejection and an alert:
  printf 'x' | dd of=demo/repo/packages/Hmpa_data/$(ls demo/repo/packages/Hmpa_data | tail -1) bs=1 seek=3000 conv=notrunc
Ctrl-C stops the agent and the repository server.`);
