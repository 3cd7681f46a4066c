/**
 * Tenant policy and flags end to end through what ships (issue 15): the
 * compiled `contentctl` maintains two tenants' bundles in the repository,
 * `contentctl serve --release` (repository + fleet endpoint + console + the
 * release scheduler) serves them, and the compiled `agent update --once`
 * of an agent per tenant fetches over HTTP: each agent gets its own
 * tenant's policy values and flag words, never the other's. Then B3: the
 * other tenant's validly signed bundle served at this tenant's path is
 * refused (POL_BUNDLE_WRONG_TENANT) and the last accepted values stay.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { sha256Hex } from "../core/crypto/digest.ts";
import { bundlePath, bundleSigPath } from "../core/effective/bundle.ts";
import { cli, cliOk, packAndPublishExample } from "./fixtures/cli-contract.ts";
import { cliCommand } from "./fixtures/compiled.ts";

setDefaultTimeout(180_000);

const ROOT = resolve(import.meta.dir, "..");
const EXAMPLE_XML = join(ROOT, "examples/RemapperRules/policy/threat-protection.xml");
let work: string;
let server: ReturnType<typeof Bun.spawn> | undefined;
let url: string;

const run = (bin: "agent" | "contentctl", ...args: string[]) => cli(bin, args, work);
const ok = (bin: "agent" | "contentctl", ...args: string[]) => cliOk(bin, args, work);

/** Reads the first stdout line of a long-running process (the URL `contentctl serve` prints), with a deadline. */
async function firstLine(proc: ReturnType<typeof Bun.spawn>, ms = 60_000): Promise<string> {
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  let text = "";
  const deadline = Date.now() + ms;
  while (!text.includes("\n")) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error("contentctl serve printed no URL in time");
    const chunk = await Promise.race([
      reader.read(),
      Bun.sleep(left).then(() => ({ done: true, value: undefined })),
    ]);
    if (chunk.done) throw new Error(`contentctl serve ended: ${text}`);
    text += new TextDecoder().decode(chunk.value);
  }
  reader.releaseLock();
  return text.split("\n")[0]!;
}

const agentArgs = (tenant: string) => ["--state", `st-${tenant}`, "--config", `agent-${tenant}.json`];
const update = (tenant: string) =>
  run(
    "agent",
    "update",
    "--once",
    "--repo",
    url,
    "--group",
    "stable",
    "--trust",
    "k/root.pem",
    ...agentArgs(tenant),
    "--json",
  );
const configShow = async (tenant: string) =>
  JSON.parse(await ok("agent", "config", "show", ...agentArgs(tenant), "--json")) as {
    values: { key: string; value: unknown; origin: { source: string } }[];
    fleet: { lastSerial: number | null; lastError: { code: string } | null };
  };
const valueAt = (show: Awaited<ReturnType<typeof configShow>>, key: string) =>
  show.values.find((v) => v.key === key)?.value;
const flagRow = async (tenant: string, flag: string) =>
  (
    JSON.parse(await ok("agent", "flags", ...agentArgs(tenant), "--json")).flags as {
      flag: string;
      service: string | null;
      enabled: boolean;
    }[]
  ).find((f) => f.flag === flag);

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "outpost-policy-fleet-"));
  await ok("contentctl", "keys", "init", "--dir", "k");
  for (const type of ["RemapperRules", "Flags"]) await packAndPublishExample(type, work, "stable");
  // Two tenants, two policies: acme looks Live Protection up within 1.5 s, globex within 4 s.
  // The same document name (the example rule files read threat-protection.xml), another tenant's values.
  mkdirSync(join(work, "globex"));
  const GLOBEX_XML = join(work, "globex", "threat-protection.xml");
  writeFileSync(GLOBEX_XML, readFileSync(EXAMPLE_XML, "utf8").replace("1500ms", "4s"));
  await ok("contentctl", "policy", "set", "--tenant", "acme", "--repo", "repo", "--keys", "k", EXAMPLE_XML);
  await ok("contentctl", "policy", "set", "--tenant", "globex", "--repo", "repo", "--keys", "k", GLOBEX_XML);
  await ok(
    "contentctl",
    "flags",
    "set",
    "--tenant",
    "acme",
    "--repo",
    "repo",
    "--keys",
    "k",
    "onAccessBlock",
    "on",
  );
  await ok(
    "contentctl",
    "flags",
    "set",
    "--tenant",
    "globex",
    "--repo",
    "repo",
    "--keys",
    "k",
    "onAccessBlock",
    "off",
  );
  for (const tenant of ["acme", "globex"])
    writeFileSync(join(work, `agent-${tenant}.json`), JSON.stringify({ fleet: { tenant } }));
  writeFileSync(
    join(work, "release.json"),
    JSON.stringify({
      repo: "repo",
      keys: "k",
      stateDir: "release-state",
      groups: [{ name: "stable", promote: "manual", soakMinutes: 60 }],
      fleet: {
        tenants: {
          acme: { tokenSha256: sha256Hex(new TextEncoder().encode("acme-fleet-token-0123456789")) },
          globex: { tokenSha256: sha256Hex(new TextEncoder().encode("globex-fleet-token-012345678")) },
        },
      },
    }),
  );
  server = Bun.spawn(
    [
      ...(await cliCommand("contentctl")),
      "serve",
      "--repo",
      "repo",
      "--port",
      "0",
      "--release",
      "release.json",
    ],
    { cwd: work, stdout: "pipe", stderr: "ignore", env: { ...process.env, OUTPOST_LOG_QUIET: "1" } },
  );
  const line = JSON.parse(await firstLine(server)) as { url: string; console?: string };
  expect(line.console).toBeDefined(); // the release server, not the plain repository server
  url = line.url.replace(/\/$/, "");
});

afterAll(async () => {
  server?.kill("SIGTERM");
  await server?.exited;
  rmSync(work, { recursive: true, force: true });
});

test("two tenants on one `contentctl serve --release`: each agent gets only its own policy and flags", async () => {
  for (const tenant of ["acme", "globex"]) expect((await update(tenant)).code).toBe(0);
  const acme = await configShow("acme");
  const globex = await configShow("globex");
  expect(valueAt(acme, "liveProtection.timeoutMs")).toBe(1500);
  expect(valueAt(globex, "liveProtection.timeoutMs")).toBe(4000);
  // Each tenant's bundle has its own serial (policy set, then flags set: 2 each).
  expect([acme.fleet.lastSerial, globex.fleet.lastSerial]).toEqual([2, 2]);
  expect(await flagRow("acme", "onAccessBlock")).toMatchObject({ service: "on", enabled: true });
  expect(await flagRow("globex", "onAccessBlock")).toMatchObject({ service: "off", enabled: false });

  // A change for one tenant reaches that tenant's agent only.
  await ok(
    "contentctl",
    "flags",
    "set",
    "--tenant",
    "globex",
    "--repo",
    "repo",
    "--keys",
    "k",
    "onAccessBlock",
    "on",
  );
  for (const tenant of ["acme", "globex"]) expect((await update(tenant)).code).toBe(0);
  expect(await flagRow("globex", "onAccessBlock")).toMatchObject({ service: "on", enabled: true });
  expect((await configShow("acme")).fleet.lastSerial).toBe(2);
  expect((await configShow("globex")).fleet.lastSerial).toBe(3);
});

test("B3: another tenant's validly signed bundle at this tenant's path is refused; the last values stay", async () => {
  // A misrouting fleet (or an attacker with the other tenant's bundle) serves globex's files as acme's.
  for (const path of [bundlePath, bundleSigPath])
    copyFileSync(join(work, "repo", path("globex")), join(work, "repo", path("acme")));
  await update("acme");
  const acme = await configShow("acme");
  expect(acme.fleet.lastError?.code).toBe("POL_BUNDLE_WRONG_TENANT");
  expect(valueAt(acme, "liveProtection.timeoutMs")).toBe(1500);
  expect(acme.fleet.lastSerial).toBe(2);
  // globex's agent is unaffected.
  expect((await update("globex")).code).toBe(0);
  expect(valueAt(await configShow("globex"), "liveProtection.timeoutMs")).toBe(4000);
});
