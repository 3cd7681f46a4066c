/**
 * The supervisor (`agent run`) needs the handlers' manifests — group,
 * privileges, limits — and never their code: each host process imports its
 * own group's. Evaluating every handler module anyway held ~1.7 MB of heap
 * and 860 zod schemas in the compiled supervisor for its whole life (issue
 * 21, Footprint). Checked on a real `agent run` from source: the modules it
 * evaluated are written out as it exits (a preload, test-only).
 */
import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const PRELOAD = `
process.on("exit", () => {
  require("node:fs").writeFileSync(process.env.OUTPOST_TEST_MODULES, Object.keys(require.cache).join("\\n"));
});
`;

test("agent run evaluates no handler's code (handlers/<Type>/index.ts and what only it imports)", async () => {
  const work = mkdtempSync(join(tmpdir(), "outpost-supervisor-modules-"));
  dirs.push(work);
  const preload = join(work, "preload.ts");
  const modules = join(work, "modules.txt");
  const state = join(work, "state");
  writeFileSync(preload, PRELOAD);
  writeFileSync(
    join(work, "agent.json"),
    JSON.stringify({ stateDir: state, update: { enabled: false, trust: join(work, "none.pem") } }),
  );
  const agent = Bun.spawn(
    [
      process.execPath,
      "--preload",
      preload,
      join(ROOT, "bin/agent.ts"),
      "run",
      "--config",
      join(work, "agent.json"),
      "--port",
      "0",
    ],
    {
      cwd: work,
      env: { ...process.env, OUTPOST_LOG_QUIET: "1", OUTPOST_TEST_MODULES: modules },
      stdout: "ignore",
      stderr: "pipe",
    },
  );
  try {
    // Up once its control plane is advertised (the services are wired by then).
    while (!existsSync(join(state, "control.json"))) {
      if (agent.exitCode !== null) throw new Error(`agent run exited ${agent.exitCode}`);
      await Bun.sleep(50);
    }
  } finally {
    agent.kill("SIGTERM");
    await agent.exited;
  }
  const loaded = readFileSync(modules, "utf8")
    .split("\n")
    .filter((p) => p.startsWith(`${ROOT}/handlers/`))
    .map((p) => p.slice(ROOT.length + 1));
  // The graph is real: the registry by manifest and the supervisor-side services are there. (The
  // manifests themselves are literals in it, parsed at build time: handlers/builtins.macro.ts.)
  expect(loaded).toContain("handlers/manifests.ts");
  expect(loaded).toContain("handlers/DatasetA/on-access-service.ts");
  // No handler module, nor the engines only a handler uses (Lua, the scan engine, rule conditions).
  const handlerCode =
    /^handlers\/([A-Za-z_]+\/index\.ts|_shared\/lua\/sandbox\.ts|DatasetA\/engine\.ts|Behavior\/conditions\.ts)$/;
  expect(loaded.filter((p) => handlerCode.test(p))).toEqual([]);
}, 30_000);
