/**
 * APPFEED and USERAPPFEED end to end on this machine: a real agent with the
 * appfeed and scanner hosts, signed and encrypted rules, the feed `agent
 * run` starts, and PostgreSQL (a Debian package the CI image installs).
 * The APPFEED rule generates the data-directory exclusion, on-access
 * scanning stops scanning there (with the real scanner), a tenant-signed
 * USERAPPFEED rule works and a vendor-signed one is refused (or, while no
 * tenant key is trusted, held inert: installed, never run), a failing rule
 * keeps its previous exclusions, a forbidden one excludes nothing, and a
 * package-database change reruns the rules.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentEvent } from "../../core/agent/events.ts";
import { initKeys, KEY_FILES, loadSigningKeys } from "../../core/crypto/keys.ts";
import { ExclusionMatcher } from "../../core/exclusions/matcher.ts";
import type { ContentHandler } from "../../core/handler/contract.ts";
import { OnAccessSchema } from "../../core/sensors-config.ts";
import { makeVendor, type Vendor } from "../../test/fixtures/vendor.ts";
import { APPFEED_TEST_LIMITS, exampleRules } from "../_shared/appfeed/testkit.ts";
import { groupWorkDir } from "../_shared/lua/keys.ts";
import {
  type LuaTestAgent,
  rulesPayload,
  startLuaAgent,
  type TestKey,
  testKey,
} from "../_shared/lua/testkit.ts";
import { TENANT_ROOT_FILE, tenantSign } from "../_shared/tenant/signature.ts";
import { datasetAHandler } from "../DatasetA/index.ts";
import { OnAccessScanner } from "../DatasetA/on-access.ts";
import { createScanRuntime } from "../DatasetA/scan/runtime.ts";
import { ScanService } from "../DatasetA/scan/service.ts";
import { userAppfeedHandler } from "../USERAPPFEED/index.ts";
import { AppfeedFeed } from "./feed.ts";
import { appfeedHandler } from "./index.ts";

setDefaultTimeout(60_000);
const LIMITS = APPFEED_TEST_LIMITS;
const sources = exampleRules;
const MARK = "outpost-appfeed-mark";
const hex = (s: string) => Buffer.from(s).toString("hex");
const pgDataDir = () => {
  const major = readdirSync("/etc/postgresql")[0]!;
  return readFileSync(`/etc/postgresql/${major}/main/postgresql.conf`, "utf8").match(
    /\ndata_directory\s*=\s*'([^']+)'/,
  )![1]!;
};

let vendor: Vendor;
let key: TestKey;
let tenantDir: string;
let pkgDir: string;
let t: LuaTestAgent;
let feed: AppfeedFeed;
const events: AgentEvent[] = [];

const tenantRootFile = () => join(groupWorkDir(t.stateDir, "appfeed"), TENANT_ROOT_FILE);
/** What `agent appfeed trust-tenant` does (its CLI test is in contract.test.ts). */
const trustTenant = () => writeFileSync(tenantRootFile(), readFileSync(join(tenantDir, KEY_FILES.rootCert)));

async function until(cond: () => boolean, ms = 20_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !cond()) await Bun.sleep(20);
  return cond();
}

async function userRules(
  version: number,
  signer: "tenant" | "vendor" | "none",
): Promise<Record<string, Uint8Array>> {
  const files = rulesPayload("USERAPPFEED", sources("USERAPPFEED"), key, { limits: LIMITS });
  if (signer === "none") return files;
  const keys = signer === "tenant" ? await loadSigningKeys(tenantDir) : vendor.keys;
  const signed = await tenantSign(new Map(Object.entries(files)), { type: "USERAPPFEED", version, keys });
  return { ...files, ...Object.fromEntries(signed) };
}

beforeAll(async () => {
  vendor = await makeVendor();
  key = testKey();
  tenantDir = mkdtempSync(join(tmpdir(), "outpost-tenant-"));
  pkgDir = mkdtempSync(join(tmpdir(), "outpost-dpkg-"));
  await initKeys(tenantDir, { name: "Acme Tenant", now: new Date(Date.now() - 24 * 3600 * 1000) });
  await vendor.release("APPFEED", 1, rulesPayload("APPFEED", sources("APPFEED"), key, { limits: LIMITS }));
  await vendor.release("USERAPPFEED", 1, await userRules(1, "tenant"));
  await vendor.release("DatasetA", 1, { "main.ndb": `T.Mark:0:*:${hex(MARK)}\n` });
  t = await startLuaAgent(vendor, [appfeedHandler, userAppfeedHandler, datasetAHandler] as ContentHandler[], {
    key,
  });
  trustTenant();
  t.agent.events.subscribe((e) => events.push(e));
  const report = await t.agent.update();
  expect(report.rejected).toEqual([]);
  feed = new AppfeedFeed(t.agent, { watchDirs: [pkgDir], settleMs: 50 });
  await feed.start();
});

afterAll(async () => {
  feed?.stop();
  await t?.stop();
  for (const d of [t?.stateDir, tenantDir, pkgDir]) if (d) rmSync(d, { recursive: true, force: true });
  vendor?.cleanup();
});

test("APPFEED detects PostgreSQL and excludes its data directory; USERAPPFEED (tenant-signed) adds its own", () => {
  const list = t.agent.exclusions.list();
  expect(list).toContainEqual(
    expect.objectContaining({
      kind: "path",
      value: pgDataDir(),
      scope: ["onAccess", "scan"],
      source: "APPFEED:postgresql",
    }),
  );
  for (const app of ["nginx", "clamav", "rsyslog"]) {
    expect(list.some((e) => e.source === `APPFEED:${app}`)).toBe(true);
  }
  expect(list).toContainEqual(
    expect.objectContaining({ kind: "process", scope: ["behavior"], source: "USERAPPFEED:nightly-backup" }),
  );
  expect(t.agent.exclusions.summary().bySource).toMatchObject({
    APPFEED: expect.any(Number),
    USERAPPFEED: 2,
  });
  expect(t.agent.content().find((c) => c.type === "USERAPPFEED")).toMatchObject({ version: 1 });
  // The rules ran in the appfeed host: unprivileged, no network, Landlock read-only (or a note saying why not).
  const host = t.agent.status().hosts?.find((h) => h.group === "appfeed");
  expect(host?.handlers.sort()).toEqual(["APPFEED", "USERAPPFEED"]);
  if (process.getuid?.() === 0) {
    expect(host?.layers).toMatchObject({ uidDrop: true, netns: true });
    expect(host?.uid).not.toBe(0);
  }
  expect(host?.layers.landlockFs || host?.notes.some((n) => /landlock/i.test(n))).toBe(true);
});

test("on-access scanning no longer scans the excluded path; elsewhere the same bytes are blocked", async () => {
  const rt = await createScanRuntime({ config: t.agent.config, api: t.agent }, { background: false });
  const scanner = new OnAccessScanner({
    config: OnAccessSchema.parse({ enabled: true, mode: "block", paths: ["/"] }),
    stateDir: t.stateDir,
    service: rt.service,
    call: (type, method, args) => t.agent.call(type, method, args),
    emit: () => {},
    exclusions: () => t.agent.exclusions.matcher,
  });
  const file = join(pkgDir, "evil.bin");
  writeFileSync(file, `xx ${MARK} xx`);
  const fd = openSync(file, "r");
  try {
    // The event names a file under PostgreSQL's data directory: excluded, never read or scanned.
    const inData = {
      fd,
      pid: 1,
      path: join(pgDataDir(), "base", "evil.bin"),
      kind: "open" as const,
      permission: true,
    };
    expect(await scanner.decide(inData)).toBe(true);
    expect(scanner.counters).toMatchObject({ excluded: 1, scanned: 0 });
    expect(await scanner.decide({ ...inData, path: file })).toBe(false);
    expect(scanner.counters).toMatchObject({ excluded: 1, scanned: 1, blocked: 1 });
  } finally {
    closeSync(fd);
    scanner.stop();
  }
  // On-demand scans honour scope "scan" the same way (PostgreSQL's exclusion carries both).
  const report = await rt.service.scanPaths([pkgDir]);
  expect(report.found).toBe(true);
  expect(report.excluded).toBeUndefined();
  const excludingPkgDir = new ScanService({
    call: (type, method, args) => t.agent.call(type, method, args),
    policy: { lookups: false, samples: false },
    exclusions: () =>
      new ExclusionMatcher([{ kind: "path", value: pkgDir, scope: ["scan"], reason: "", source: "config" }]),
  });
  const skipped = await excludingPkgDir.scanPaths([pkgDir]);
  expect(skipped).toMatchObject({ found: false, objects: 0, excluded: 1 });
});

test("a USERAPPFEED rule signed by the vendor's key is refused for that type; v1 stays", async () => {
  await vendor.release("USERAPPFEED", 2, await userRules(2, "vendor"));
  const report = await t.agent.update();
  expect(report.rejected).toEqual([
    expect.objectContaining({
      type: "USERAPPFEED",
      code: "HND_TENANT_SIGNATURE",
      reason: expect.stringContaining("T4"),
    }),
  ]);
  expect(t.agent.content().find((c) => c.type === "USERAPPFEED")).toMatchObject({ version: 1 });
  expect(t.agent.exclusions.summary().bySource.USERAPPFEED).toBe(2);
});

test("USERAPPFEED without a verified tenant signature never runs: refused while a tenant key is trusted, held inert without one", async () => {
  const user = () => t.agent.content().find((c) => c.type === "USERAPPFEED");
  const reason = (code: string) => t.agent.health.list().find((r) => r.code === code);
  const apps = async () =>
    (await t.agent.call("USERAPPFEED", "apps", {})) as { apps: unknown[]; held?: { code: string } };
  const applied = (code: string | undefined) =>
    until(() => t.agent.exclusions.held().USERAPPFEED?.code === code);

  // T1 with a tenant key trusted: an unsigned package is refused, v1 keeps running.
  await vendor.release("USERAPPFEED", 3, await userRules(3, "none"));
  expect((await t.agent.update()).rejected).toContainEqual(
    expect.objectContaining({
      type: "USERAPPFEED",
      code: "HND_TENANT_UNSIGNED",
      reason: expect.stringContaining("T1"),
    }),
  );
  expect(user()).toMatchObject({ version: 1 });

  // T3/T5: the tenant key goes away; the next run holds v1 (amber) and its exclusions go.
  rmSync(tenantRootFile());
  await feed.runAll();
  expect(await applied("HND_TENANT_NOT_TRUSTED")).toBe(true);
  expect(t.agent.exclusions.summary().bySource.USERAPPFEED).toBeUndefined();
  expect(t.agent.exclusions.summary().held).toEqual({ USERAPPFEED: "HND_TENANT_NOT_TRUSTED" });
  expect(reason("HND_TENANT_NOT_TRUSTED")?.level).toBe("amber");

  // T1 without a tenant key: an unsigned package installs inert — loaded, nothing run, health info only.
  await vendor.release("USERAPPFEED", 4, await userRules(4, "none"));
  expect((await t.agent.update()).installed).toContainEqual(
    expect.objectContaining({ type: "USERAPPFEED", version: 4 }),
  );
  expect(await applied("HND_TENANT_UNSIGNED")).toBe(true);
  expect(user()).toMatchObject({ version: 4, handlerState: "loaded" });
  expect(await apps()).toMatchObject({ apps: [], held: { code: "HND_TENANT_UNSIGNED" } });
  expect(reason("HND_TENANT_UNSIGNED")?.level).toBe("info");
  expect(reason("HND_TENANT_NOT_TRUSTED")).toBeUndefined();
  expect(t.agent.exclusions.list().filter((e) => e.source.startsWith("USERAPPFEED:"))).toEqual([]);

  // A vendor-signed package without a tenant key installs inert too: its rules never run. Once the
  // tenant key is trusted, the next run finds it does not verify (T4) and it stays inert.
  await vendor.release("USERAPPFEED", 5, await userRules(5, "vendor"));
  expect((await t.agent.update()).installed).toContainEqual(
    expect.objectContaining({ type: "USERAPPFEED", version: 5 }),
  );
  expect(await applied("HND_TENANT_NOT_TRUSTED")).toBe(true);
  trustTenant();
  await feed.runAll();
  expect(await applied("HND_TENANT_SIGNATURE")).toBe(true);
  expect(await apps()).toMatchObject({ apps: [], held: { code: "HND_TENANT_SIGNATURE" } });
  expect(reason("HND_TENANT_SIGNATURE")?.level).toBe("amber");
  expect(t.agent.exclusions.summary().bySource.USERAPPFEED).toBeUndefined();

  // The tenant signs v6: it runs, its exclusions are back, every hold is cleared.
  await vendor.release("USERAPPFEED", 6, await userRules(6, "tenant"));
  expect((await t.agent.update()).installed).toContainEqual(
    expect.objectContaining({ type: "USERAPPFEED", version: 6 }),
  );
  expect(await applied(undefined)).toBe(true);
  expect(await until(() => t.agent.exclusions.summary().bySource.USERAPPFEED === 2)).toBe(true);
  expect((await apps()).apps).toHaveLength(1);
  for (const code of ["HND_TENANT_UNSIGNED", "HND_TENANT_NOT_TRUSTED", "HND_TENANT_SIGNATURE"]) {
    expect(reason(code)).toBeUndefined();
  }
});

test("a failing rule keeps its exclusions, a forbidden one excludes nothing; a dpkg change reruns", async () => {
  const before = events.filter((e) => e.type === "exclusions-changed").length;
  const rules = {
    ...sources("APPFEED"),
    postgresql: `app { id = "postgresql", detect = function() error("cannot parse postgresql.conf") end }`,
    root: `app { id = "root", detect = function() exclude { kind = "path", value = "/", scope = { "onAccess" } } end }`,
    self: `app { id = "self", detect = function()
      exclude { kind = "path", value = "/srv/fine", scope = { "scan" } }
      exclude { kind = "process", value = ${JSON.stringify(process.execPath)}, scope = { "behavior" } }
    end }`,
    writer: `app { id = "writer", detect = function() fs.write("/etc/cron.d/x", "* * * * * root sh") end }`,
  };
  await vendor.release("APPFEED", 2, rulesPayload("APPFEED", rules, key, { limits: LIMITS }));
  expect((await t.agent.update()).installed).toContainEqual(
    expect.objectContaining({ type: "APPFEED", version: 2 }),
  );
  expect(await until(() => events.filter((e) => e.type === "exclusions-changed").length > before)).toBe(true);
  const list = t.agent.exclusions.list();
  expect(list).toContainEqual(expect.objectContaining({ value: pgDataDir(), source: "APPFEED:postgresql" }));
  expect(list.filter((e) => ["APPFEED:root", "APPFEED:self", "APPFEED:writer"].includes(e.source))).toEqual(
    [],
  );
  expect(t.agent.exclusions.matcher.file("scan", "/srv/fine/x")).toBe(false);
  const refused = events.filter((e) => e.type === "appfeed-rule-refused").map((e) => `${e.app}: ${e.reason}`);
  expect(refused).toContainEqual(expect.stringMatching(/^root: X2/));
  expect(refused).toContainEqual(expect.stringMatching(/^self: X3/));
  expect(refused).toContainEqual(expect.stringMatching(/^writer: refused: fs\.write/));
  const reason = t.agent.health.list().find((r) => r.code === "HND_APPFEED_RULES_FAILED");
  expect(reason?.level).toBe("amber");
  expect(reason?.message).toContain(
    "lua/postgresql.lua.enc (postgresql) failed, keeps its previous exclusions",
  );
  expect(reason?.message).toContain("lua/root.lua.enc (root) refused");

  // The package database changes (an apt transaction): one rerun once it settles.
  const runs = events.filter((e) => e.type === "appfeed-ran").length;
  writeFileSync(join(pkgDir, "status"), "Package: x\n");
  mkdirSync(join(pkgDir, "updates"), { recursive: true });
  expect(await until(() => feed.packageChanges > 0)).toBe(true);
  expect(await until(() => events.filter((e) => e.type === "appfeed-ran").length >= runs + 2)).toBe(true);
});
