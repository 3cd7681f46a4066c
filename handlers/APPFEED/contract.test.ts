/**
 * APPFEED and USERAPPFEED against the external contract, with the real CLIs
 * (the compiled executables, test/fixtures/compiled.ts) and hosts.
 *
 * First the contract's literal commands for USERAPPFEED and nothing else:
 * `contentctl rules pack examples/USERAPPFEED --type USERAPPFEED --version N
 * --keys DIR --key FILE --out FILE` (no tenant keys: packed unsigned, with a
 * warning), `contentctl publish`, `agent update --once --repo … --group …
 * --state … --trust …`, and `agent content list --json` shows it loaded —
 * held inert (HND_TENANT_UNSIGNED): it runs nothing until the tenant signs it.
 *
 * Then the full path: `agent rules install-key`, APPFEED, USERAPPFEED signed
 * with the tenant's keys, `agent appfeed trust-tenant`, both loaded and
 * running, and `agent appfeed run` + `agent exclusions --json` list what the
 * examples found on this machine.
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
  return r;
}
const pack = (type: string, version: number, ...extra: string[]) =>
  // biome-ignore format: the contract's command line, as the issue writes it
  run("contentctl", "rules", "pack", join(EXAMPLES, type), "--type", type, "--version", String(version), "--keys", "k", "--key", "ck.json", "--out", `${type}-${version}.opkg`, ...extra);
const publish = (file: string) =>
  // biome-ignore format: the contract's command line
  must("contentctl", "publish", file, "--repo", "repo", "--group", "g1", "--keys", "k");
const updateOnce = () =>
  // biome-ignore format: the contract's command line
  must("agent", "update", "--once", "--repo", "repo", "--group", "g1", "--state", "st", "--trust", "k/root.pem");
type Listed = {
  type: string;
  version: number;
  handlerState: string;
  handlerStatus?: Record<string, unknown>;
};
const contentList = async (): Promise<Listed[]> =>
  JSON.parse((await must("agent", "content", "list", "--state", "st", "--json")).stdout);

test("the contract's literal commands install examples/USERAPPFEED loaded (held inert, unsigned); tenant-signed it runs beside APPFEED", async () => {
  await Promise.all([
    must("contentctl", "keys", "init", "--dir", "k", "--json"),
    must("contentctl", "keys", "init", "--dir", "t", "--name", "Acme Tenant", "--json"),
    must("contentctl", "rules", "keygen", "--out", "ck.json", "--id", "appfeed-1", "--json"),
  ]);

  // The literal commands: no tenant keys, no content key installed, no tenant root trusted.
  const unsigned = await pack("USERAPPFEED", 1);
  expect(unsigned.code).toBe(0);
  expect(unsigned.stderr).toContain("warning: USERAPPFEED packed without a tenant signature");
  expect(unsigned.stderr).toContain("inert");
  await publish("USERAPPFEED-1.opkg");
  await updateOnce();
  expect((await contentList()).find((c) => c.type === "USERAPPFEED")).toMatchObject({
    version: 1,
    handlerState: "loaded",
    handlerStatus: { apps: 0, exclusions: 0, held: { code: "HND_TENANT_UNSIGNED", level: "info" } },
  });

  // Applied, the hold says why wherever one looks: `agent exclusions` and `agent status`.
  const held = JSON.parse((await must("agent", "appfeed", "run", "--state", "st", "--json")).stdout);
  expect(held.runs.find((r: { type: string }) => r.type === "USERAPPFEED")).toMatchObject({
    apps: [],
    held: { code: "HND_TENANT_UNSIGNED" },
  });
  const heldEx = JSON.parse((await must("agent", "exclusions", "--state", "st", "--json")).stdout);
  expect(heldEx.held.USERAPPFEED).toMatchObject({
    code: "HND_TENANT_UNSIGNED",
    message: expect.stringContaining("T1"),
  });
  expect(heldEx.summary.bySource.USERAPPFEED).toBeUndefined();
  expect((await must("agent", "exclusions", "--state", "st")).stdout).toContain(
    "USERAPPFEED held, its rules do not run: HND_TENANT_UNSIGNED",
  );
  expect((await must("agent", "status", "--state", "st")).stdout).toMatch(
    /rules held\s+USERAPPFEED: HND_TENANT_UNSIGNED/,
  );

  // The full path: the content key, APPFEED, the tenant's signature and root.
  expect((await pack("APPFEED", 1)).code).toBe(0);
  const signed = await pack("USERAPPFEED", 2, "--tenant-keys", "t", "--json");
  expect(signed.code).toBe(0);
  expect(signed.stderr).not.toContain("warning");
  expect(JSON.parse(signed.stdout)).toMatchObject({ type: "USERAPPFEED", tenantSigned: true, rules: 1 });
  // --tenant-keys is USERAPPFEED's alone.
  expect((await pack("APPFEED", 2, "--tenant-keys", "t")).code).toBe(2);
  await publish("APPFEED-1.opkg");
  await publish("USERAPPFEED-2.opkg");
  await must("agent", "rules", "install-key", "ck.json", "--state", "st", "--json");
  await must("agent", "appfeed", "trust-tenant", "t/root.pem", "--state", "st", "--json");
  await updateOnce();
  const content = await contentList();
  expect(content.find((c) => c.type === "APPFEED")).toMatchObject({
    version: 1,
    handlerState: "loaded",
    handlerStatus: { apps: 4, detected: 4, failed: 0, refused: 0 },
  });
  const user = content.find((c) => c.type === "USERAPPFEED");
  expect(user).toMatchObject({ version: 2, handlerState: "loaded", handlerStatus: { apps: 1, detected: 1 } });
  expect(user?.handlerStatus?.held).toBeUndefined();

  const ran = JSON.parse((await must("agent", "appfeed", "run", "--state", "st", "--json")).stdout);
  expect(ran.mode).toBe("offline");
  expect(ran.runs.map((r: { type: string; apps: unknown[] }) => [r.type, r.apps.length])).toEqual([
    ["APPFEED", 4],
    ["USERAPPFEED", 1],
  ]);
  const ex = JSON.parse((await must("agent", "exclusions", "--state", "st", "--json")).stdout);
  expect(ex.exclusions).toContainEqual(
    expect.objectContaining({ kind: "path", source: "APPFEED:postgresql", scope: ["onAccess", "scan"] }),
  );
  expect(ex.exclusions).toContainEqual(
    expect.objectContaining({ kind: "path", value: "/var/lib/clamav", source: "APPFEED:clamav" }),
  );
  expect(ex.summary).toMatchObject({ count: ex.exclusions.length, bySource: { USERAPPFEED: 2 }, refused: 0 });
  expect(ex.summary.hash).toMatch(/^[0-9a-f]{64}$/);
  expect(ex.held).toEqual({});
});
