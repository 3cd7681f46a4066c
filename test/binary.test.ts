/**
 * The shipped artefacts, tested the way they ship: both binaries are built,
 * copied to an empty directory and run inside a private mount namespace in
 * which the checkout (sources and node_modules) is covered by an empty
 * tmpfs. Anything the binaries still loaded from the tree — a lazily
 * imported subcommand the bundler missed, a dependency resolved at run time
 * — fails here instead of on a customer's host.
 *
 * Needs root (or CAP_SYS_ADMIN) for `unshare --mount`; skipped otherwise.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gitCommit, packageVersion } from "../build.ts";
import { landlockAbi } from "../core/host/landlock.ts";
import { signedPe } from "../handlers/DatasetA/testutil.ts";
import { compiledBinaries } from "./fixtures/compiled.ts";

const ROOT = resolve(import.meta.dir, "..");

function canUnshare(): { ok: boolean; why: string } {
  const probe = Bun.spawnSync(["unshare", "--mount", "--propagation", "private", "true"], { stderr: "pipe" });
  if (probe.exitCode === 0) return { ok: true, why: "" };
  return { ok: false, why: probe.stderr.toString().trim() || `exit ${probe.exitCode}` };
}

const unshare = canUnshare();
if (!unshare.ok) {
  console.warn(`binary.test.ts skipped: 'unshare --mount' not permitted here (${unshare.why}); run as root`);
}

/** Every path under which the checkout is reachable; each gets its own tmpfs. */
function checkoutPaths(): string[] {
  return [...new Set([ROOT, realpathSync(ROOT)])];
}

let work: string;
const peTools = Boolean(Bun.which("osslsigncode") && Bun.which("openssl"));
let peThumbprint = "";
const runs = new Map<string, { code: number; stdout: string; stderr: string }>();

const STEPS: [name: string, command: string][] = [
  ["hidden", `test ! -e "$ROOT/package.json" && test ! -e "$ROOT/node_modules"`],
  ["agent-version", "./agent --version"],
  ["contentctl-version", "./contentctl --version"],
  ["keys", "./contentctl keys init --dir k --json"],
  ["hmpa-build", "./contentctl hmpa-build --in thumbprints.txt --out payload/allowlist.bin --json"],
  ["pack", "./contentctl pack payload --type Hmpa_data --version 1 --keys k --out Hmpa_data-1.opkg --json"],
  ["inspect", "./contentctl inspect Hmpa_data-1.opkg --trust k/root.pem --json"],
  ["publish", "./contentctl publish Hmpa_data-1.opkg --repo repo --group stable --keys k --json"],
  ["update", "./agent update --once --repo repo --group stable --state st --trust k/root.pem --json"],
  ["content-list", "./agent content list --state st --json"],
  ["check-allowed", "./agent hmpa check StackPivot:3f9a01 --state st --json"],
  ["check-unknown", "./agent hmpa check HeapSpray:0000 --state st --json"],
  ["online-status", "./agent status --state st --json"],
  ["online-check", "./agent hmpa check HeapSpray:77aa --state st --json"],
  // Lua rules (issue 5): the interpreter (glue.wasm) and the last-resort RepairKit come from the binary.
  ["lua-keygen", "./contentctl rules keygen --out ck.json --id bin-1 --json"],
  [
    "lua-pack",
    "./contentctl rules pack lua-src --type Behavior --version 1 --keys k --key ck.json --out Behavior-1.opkg --json",
  ],
  ["lua-publish", "./contentctl publish Behavior-1.opkg --repo repo --group lua --keys k --json"],
  ["lua-install-key", "./agent rules install-key ck.json --state st --json"],
  ["lua-update", "./agent update --once --repo repo --group lua --state st --trust k/root.pem --json"],
  ["lua-test", "./agent rules test lua-src --events lua-events.jsonl --json"],
  ["lua-replay", "./agent events replay lua-events.jsonl --state st --json"],
  ["lua-repair", "./agent run-repair --config lua-repair.json --state st --dry-run --json"],
  ["online-lua-replay", "./agent events replay lua-events.jsonl --state st --json"],
  // Authenticode's X.509 stack is loaded on a scanner host's first PE (core/deferred-import.ts): in
  // the binary that happens after the host locked its sandbox, from the executable's own bundle.
  ["ds-pack", "./contentctl pack ds --type DatasetA --version 1 --keys k --out DatasetA-1.opkg --json"],
  ["ds-publish", "./contentctl publish DatasetA-1.opkg --repo repo --group ds --keys k --json"],
  ["ds-update", "./agent update --once --repo repo --group ds --state st --trust k/root.pem --json"],
  ["ds-scan-pe", "./agent scan signed.exe --state st --json"],
  ["online-ds-scan-pe", "./agent scan signed.exe --state st --json"],
  // USERAPPFEED's tenant signature is checked with the X.509/CMS stack the appfeed host loads only
  // then (handlers/_shared/tenant/signature.ts): in the binary, after the host locked its sandbox.
  ["uaf-keys", "./contentctl keys init --dir tk --name 'Binary Tenant' --json"],
  [
    "uaf-pack",
    "./contentctl rules pack uaf --type USERAPPFEED --version 1 --key ck.json --keys k --tenant-keys tk --out USERAPPFEED-1.opkg --json",
  ],
  ["uaf-publish", "./contentctl publish USERAPPFEED-1.opkg --repo repo --group uaf --keys k --json"],
  ["uaf-trust", "./agent appfeed trust-tenant tk/root.pem --state st --json"],
  ["uaf-update", "./agent update --once --repo repo --group uaf --state st --trust k/root.pem --json"],
  ["uaf-run", "./agent appfeed run --state st --json"],
];

/**
 * The whole session as one script, so it runs in one namespace. The
 * running agent is waited for by polling its first stdout line (bounded),
 * never by a fixed sleep.
 */
function script(): string {
  const step = (name: string, command: string) =>
    `( ${command} ) > out/${name}.stdout 2> out/${name}.stderr; echo $? > out/${name}.rc`;
  const offline = STEPS.filter(([n]) => !n.startsWith("online-"));
  const online = STEPS.filter(([n]) => n.startsWith("online-"));
  return [
    "set -u",
    ...checkoutPaths().map((p) => `mount -t tmpfs -o size=1m,mode=0755 outpost-hidden '${p}'`),
    `cd '${work}'`,
    "mkdir -p out payload",
    ...offline.map(([n, c]) => step(n, c)),
    "./agent run --state st --repo repo --group stable --trust k/root.pem > out/run.stdout 2> out/run.stderr &",
    "agent_pid=$!",
    "i=0; while [ ! -s out/run.stdout ] && [ $i -lt 400 ] && kill -0 $agent_pid 2>/dev/null; do sleep 0.05; i=$((i+1)); done",
    ...online.map(([n, c]) => step(n, c)),
    "kill -TERM $agent_pid; wait $agent_pid; echo $? > out/run.rc",
  ].join("\n");
}

describe.skipIf(!unshare.ok)("single binaries with the checkout hidden", () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "outpost-binary-"));
    for (const p of checkoutPaths()) {
      if (work.startsWith(`${p}/`)) throw new Error(`temp dir ${work} lies inside the checkout it must hide`);
    }
    // Copies: the cache lies inside the checkout, which the namespace below hides.
    const bins = await compiledBinaries();
    copyFileSync(bins.agent, join(work, "agent"));
    copyFileSync(bins.contentctl, join(work, "contentctl"));
    mkdirSync(join(work, "payload"));
    writeFileSync(join(work, "thumbprints.txt"), "# test allowlist\nStackPivot:3f9a01\nHeapSpray:77aa\n");
    mkdirSync(join(work, "lua-src"));
    writeFileSync(
      join(work, "lua-src", "marker.lua"),
      'describe{ title = "binary marker", severity = "low" }\non("process.start", function(e) if e.cmdline:find("outpost-binary-marker", 1, true) then detect{ pid = e.pid } end end)\n',
    );
    writeFileSync(
      join(work, "lua-events.jsonl"),
      '{"type":"process.start","pid":1,"cmdline":"ls"}\n{"type":"process.start","pid":2,"cmdline":"sh outpost-binary-marker"}\n',
    );
    mkdirSync(join(work, "ds"));
    writeFileSync(
      join(work, "ds", "bin.ndb"),
      "Outpost.Test.Binary:0:*:6f75747073742d62696e6172792d6d61726b6572\n",
    );
    if (peTools) {
      const pe = signedPe(work, ["-newkey", "rsa:2048"], "pe");
      writeFileSync(join(work, "signed.exe"), pe.signed);
      peThumbprint = pe.thumbprint;
    }
    mkdirSync(join(work, "uaf"));
    for (const f of readdirSync(join(ROOT, "examples/USERAPPFEED")))
      copyFileSync(join(ROOT, "examples/USERAPPFEED", f), join(work, "uaf", f));
    writeFileSync(
      join(work, "lua-repair.json"),
      JSON.stringify({ update: { repo: "repo", group: "stable", trust: "k/root.pem" } }),
    );

    const proc = Bun.spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c", script()], {
      cwd: work,
      // No bun, no node_modules/.bin on PATH: the binaries must carry their runtime.
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ROOT, OUTPOST_LOG_QUIET: "1", NO_COLOR: "1" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    if (code !== 0) throw new Error(`namespace script failed (${code}): ${stderr}`);
    for (const name of [...STEPS.map(([n]) => n), "run"]) {
      const read = (ext: string) => readFileSync(join(work, "out", `${name}.${ext}`), "utf8");
      runs.set(name, { code: Number(read("rc").trim()), stdout: read("stdout"), stderr: read("stderr") });
    }
  }, 120_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const ok = (name: string) => {
    const r = runs.get(name);
    if (!r) throw new Error(`step ${name} did not run`);
    if (r.code !== 0) throw new Error(`step ${name} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return r;
  };
  const json = (name: string) => JSON.parse(ok(name).stdout);

  test("the checkout is invisible inside the namespace", () => {
    ok("hidden");
  });

  test("--version shows version and commit baked in at build time", () => {
    expect(ok("agent-version").stdout).toBe(`outpost-agent ${packageVersion()} (${gitCommit()})\n`);
    expect(ok("contentctl-version").stdout).toBe(`outpost-contentctl ${packageVersion()} (${gitCommit()})\n`);
  });

  test("vendor side: keys, allowlist, pack, inspect, publish", () => {
    ok("keys");
    ok("hmpa-build");
    ok("pack");
    expect(JSON.stringify(json("inspect"))).toContain("Hmpa_data");
    ok("publish");
  });

  test("agent side: one offline update cycle installs the package", () => {
    const report = json("update");
    expect(report).toMatchObject({ ok: true, index: "updated", group: "stable", rejected: [] });
    expect(report.installed).toEqual([{ type: "Hmpa_data", version: 1, previousVersion: null }]);
    // The package went through the download spool (core/update/spool.ts), which it left empty.
    expect(readdirSync(join(work, "st", "update-spool"))).toEqual([]);

    const items = json("content-list");
    const installed = items.filter((c: { version: unknown }) => c.version !== null);
    expect(installed).toHaveLength(1);
    expect(installed[0]).toMatchObject({
      type: "Hmpa_data",
      version: 1,
      handlerState: "loaded",
      lkgVersion: null,
    });
    expect(installed[0].handlerStatus.entries).toBe(2);
  });

  test("agent side: hmpa check answers from the installed content, offline", () => {
    expect(json("check-allowed")).toEqual({ thumbprint: "StackPivot:3f9a01", allowed: true });
    expect(json("check-unknown")).toEqual({ thumbprint: "HeapSpray:0000", allowed: false });
  });

  test("agent run serves the control plane; the CLI uses it; SIGTERM stops it cleanly", () => {
    const status = json("online-status");
    const line = JSON.parse(runs.get("run")!.stdout.split("\n")[0]!);
    expect(line).toMatchObject({ msg: "agent running" });
    // The status came from the running agent, not from an in-process one.
    expect(status.agent.pid).toBe(line.pid);
    expect(status.agent.commit).toBe(gitCommit());
    expect(status.content.find((c: { type: string }) => c.type === "Hmpa_data")).toMatchObject({
      version: 1,
      handlerState: "loaded",
    });
    // The compiled agent started its hmpa host from itself (`agent host`), sandboxed.
    const hmpa = status.hosts.find((h: { group: string }) => h.group === "hmpa");
    expect(hmpa).toMatchObject({ isolation: "process", state: "running", restarts: 0 });
    expect(hmpa.pid).not.toBe(status.agent.pid);
    expect(hmpa.layers.landlockFs).toBe(landlockAbi() > 0);
    // Compiled, no thread predates the host's sandbox (a from-source host's module loader starts Bun's
    // thread pool first; core/host/landlock.ts): the restriction covers every thread.
    expect(hmpa.notes.filter((n: string) => n.includes("threads started before the sandbox"))).toEqual([]);
    expect(json("online-check")).toEqual({ thumbprint: "HeapSpray:77aa", allowed: true });
    expect(ok("run").code).toBe(0);
  });
  test("Lua rules: packed, installed, tested and replayed by the compiled binaries; baked-in RepairKit runs", () => {
    expect(json("lua-pack")).toMatchObject({ type: "Behavior", version: 1, keyId: "bin-1" });
    expect(json("lua-update").installed).toEqual([{ type: "Behavior", version: 1, previousVersion: null }]);
    for (const step of ["lua-test", "lua-replay", "online-lua-replay"]) {
      const r = json(step);
      expect(r.detections.map((d: { rule: string }) => d.rule)).toEqual(["marker"]);
    }
    const repair = json("lua-repair");
    expect(repair.ruleset.source).toBe("baked-in");
    expect(repair.summary.failed).toBe(0);
    expect(repair.checks.map((c: { id: string }) => c.id)).toContain("autoupdate.trust-store");
  });

  test.skipIf(!peTools)(
    "DatasetA: a signed PE's Authenticode is checked by the compiled scanner host, offline and via the agent",
    () => {
      expect(json("ds-update").installed).toEqual([{ type: "DatasetA", version: 1, previousVersion: null }]);
      for (const [step, via] of [
        ["ds-scan-pe", "offline"],
        ["online-ds-scan-pe", "agent"],
      ] as const) {
        const r = json(step);
        expect(r.via).toBe(via);
        expect(r.executables).toEqual([
          expect.objectContaining({
            kind: "pe",
            authenticode: expect.objectContaining({
              status: "valid",
              signer: expect.objectContaining({ thumbprint: peThumbprint }),
            }),
          }),
        ]);
      }
    },
  );

  test("USERAPPFEED: the compiled appfeed host verifies the tenant signature and runs the rules", () => {
    expect(json("uaf-update").installed).toEqual([
      { type: "USERAPPFEED", version: 1, previousVersion: null },
    ]);
    const user = json("uaf-run").runs.find((r: { type: string }) => r.type === "USERAPPFEED");
    expect(user).toMatchObject({ type: "USERAPPFEED", version: 1 });
    expect(user.error).toBeUndefined();
    expect(user.held).toBeUndefined();
    expect(user.apps.length).toBeGreaterThan(0);
  });
});
