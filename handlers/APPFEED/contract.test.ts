/**
 * APPFEED and USERAPPFEED against the external contract, with the real CLIs
 * and hosts: `contentctl rules pack` (USERAPPFEED with the tenant's keys),
 * `contentctl publish`, `agent rules install-key`, `agent appfeed
 * trust-tenant`, `agent update --once`, then `agent content list --json`
 * shows both loaded, and `agent appfeed run` + `agent exclusions --json`
 * list what the examples found on this machine.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { cli } from "../../test/fixtures/cli-contract.ts";

setDefaultTimeout(180_000);
const EXAMPLES = resolve(import.meta.dir, "../../examples");
const dir = mkdtempSync(join(tmpdir(), "outpost-contract-appfeed-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = (tool: "agent" | "contentctl", ...args: string[]) => cli(tool, args, dir);
async function must(tool: "agent" | "contentctl", ...args: string[]) {
  const r = await run(tool, ...args);
  if (r.code !== 0) throw new Error(`${tool} ${args.join(" ")} exited ${r.code}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}
const pack = (type: string, ...extra: string[]) =>
  run(
    "contentctl",
    "rules",
    "pack",
    join(EXAMPLES, type),
    "--type",
    type,
    "--version",
    "1",
    "--keys",
    "k",
    "--key",
    "ck.json",
    "--out",
    `${type}-1.opkg`,
    "--json",
    ...extra,
  );

test("examples/APPFEED and examples/USERAPPFEED pack, install with agent update --once, load and exclude", async () => {
  await Promise.all([
    must("contentctl", "keys", "init", "--dir", "k", "--json"),
    must("contentctl", "keys", "init", "--dir", "t", "--name", "Acme Tenant", "--json"),
    must("contentctl", "rules", "keygen", "--out", "ck.json", "--id", "appfeed-1", "--json"),
  ]);
  // USERAPPFEED is the tenant's: packing it without the tenant's keys is a usage error, nothing written.
  const unsigned = await pack("USERAPPFEED");
  expect(unsigned.code).toBe(2);
  expect(JSON.parse(unsigned.stdout).error.message).toContain("--tenant-keys");
  expect((await pack("APPFEED")).code).toBe(0);
  const user = await pack("USERAPPFEED", "--tenant-keys", "t");
  expect(user.code).toBe(0);
  expect(JSON.parse(user.stdout)).toMatchObject({ type: "USERAPPFEED", tenantSigned: true, rules: 1 });
  for (const type of ["APPFEED", "USERAPPFEED"]) {
    await must(
      "contentctl",
      "publish",
      `${type}-1.opkg`,
      "--repo",
      "repo",
      "--group",
      "g1",
      "--keys",
      "k",
      "--json",
    );
  }
  await must("agent", "rules", "install-key", "ck.json", "--state", "st", "--json");
  await must("agent", "appfeed", "trust-tenant", "t/root.pem", "--state", "st", "--json");
  await must(
    "agent",
    "update",
    "--once",
    "--repo",
    "repo",
    "--group",
    "g1",
    "--state",
    "st",
    "--trust",
    "k/root.pem",
    "--json",
  );
  const content = JSON.parse(await must("agent", "content", "list", "--state", "st", "--json"));
  expect(content.find((c: { type: string }) => c.type === "APPFEED")).toMatchObject({
    version: 1,
    handlerState: "loaded",
    handlerStatus: { apps: 4, detected: 4, failed: 0, refused: 0 },
  });
  expect(content.find((c: { type: string }) => c.type === "USERAPPFEED")).toMatchObject({
    version: 1,
    handlerState: "loaded",
    handlerStatus: { apps: 1, detected: 1 },
  });

  const ran = JSON.parse(await must("agent", "appfeed", "run", "--state", "st", "--json"));
  expect(ran.mode).toBe("offline");
  expect(ran.runs.map((r: { type: string; apps: unknown[] }) => [r.type, r.apps.length])).toEqual([
    ["APPFEED", 4],
    ["USERAPPFEED", 1],
  ]);
  const ex = JSON.parse(await must("agent", "exclusions", "--state", "st", "--json"));
  expect(ex.exclusions).toContainEqual(
    expect.objectContaining({ kind: "path", source: "APPFEED:postgresql", scope: ["onAccess", "scan"] }),
  );
  expect(ex.exclusions).toContainEqual(
    expect.objectContaining({ kind: "path", value: "/var/lib/clamav", source: "APPFEED:clamav" }),
  );
  expect(ex.summary).toMatchObject({ count: ex.exclusions.length, bySource: { USERAPPFEED: 2 }, refused: 0 });
  expect(ex.summary.hash).toMatch(/^[0-9a-f]{64}$/);
});
