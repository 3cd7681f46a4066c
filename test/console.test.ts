/**
 * The release console in a real browser (headless Chromium via
 * playwright-core): groups and versions, a release's progress and its
 * health charts render from the live server, nothing is fetched from
 * anywhere but the server itself, the CSP holds (no violations), and the
 * page follows the rollout on its own when the release moves on.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import type { Heartbeat } from "../core/agent/heartbeat-protocol.ts";
import { sha256Hex } from "../core/crypto/digest.ts";
import { publish } from "../core/repo/publish.ts";
import { parseReleaseConfig } from "../fleet/config.ts";
import { type ReleaseServer, serveRelease } from "../fleet/server.ts";
import { makeVendor, type Vendor } from "./fixtures/vendor.ts";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
const run = CHROMIUM ? describe : describe.skip;
if (!CHROMIUM) {
  console.warn(
    "test/console.test.ts skipped: chromium is not installed (apt-get install -y chromium; .ci/run does)",
  );
}

const TOKEN = "console-test-token-0123456789";
const OPERATOR = "console-operator-token-0123456789";
const GROUPS = ["eng-test", "internal", "public-1"];

let vendor: Vendor;
let root: string;
let server: ReleaseServer;
let browser: Browser;
let clock = Date.now();
/**
 * Chromium starts and repaints in well under a second on a quiet box, and many times slower
 * beside a second copy of the suite; these ceilings only catch a page that never gets there.
 */
const WAIT_MS = 30_000;
setDefaultTimeout(120_000);

function heartbeat(id: string, group: string, version: number, rolledBack = false): Heartbeat {
  return {
    schema: 1,
    agentId: id,
    tenant: "acme",
    group,
    agentVersion: "test",
    sentAt: new Date(clock).toISOString(),
    health: "green",
    content: [
      {
        type: "TestText",
        version: rolledBack ? 1 : version,
        handlerState: "loaded",
        badVersions: rolledBack ? [version] : [],
        crashes: 0,
        rollbacks: rolledBack
          ? [{ from: version, to: 1, at: new Date(clock).toISOString(), automatic: true }]
          : [],
      },
    ],
    rejected: 0,
    lastRejections: [],
  };
}

async function report(hb: Heartbeat): Promise<void> {
  const res = await fetch(new URL("/fleet/heartbeat", server.url), {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(hb),
  });
  expect(res.status).toBe(204);
}

run("release console in headless Chromium", () => {
  beforeAll(async () => {
    vendor = await makeVendor();
    root = mkdtempSync(join(tmpdir(), "outpost-console-"));
    const v1 = await vendor.pack("TestText", 1, { "data.txt": "one" }, { now: new Date(clock - 3600_000) });
    for (const g of GROUPS) {
      await publish({
        repo: vendor.repo,
        group: g,
        keys: vendor.keysDir,
        packageBytes: v1,
        now: new Date(clock - 3600_000),
      });
    }
    server = await serveRelease({
      config: parseReleaseConfig({
        repo: vendor.repo,
        keys: vendor.keysDir,
        stateDir: join(root, "state"),
        groups: GROUPS.map((name) => ({ name, promote: "manual", soakMinutes: 30 })),
        health: { minSample: 4 },
        // The vendor's own test fleet, reporting unsigned (the compatibility mode; signed: fleet/identity/).
        fleet: {
          tenants: { acme: { tokenSha256: sha256Hex(new TextEncoder().encode(TOKEN)), vendor: true } },
          identity: { allowUnenrolled: true },
        },
        console: { operators: { alice: { tokenSha256: sha256Hex(new TextEncoder().encode(OPERATOR)) } } },
      }),
      port: 0,
      autoTick: false,
      now: () => new Date(clock),
    });
    const file = join(root, "TestText-2.tar");
    writeFileSync(file, await vendor.pack("TestText", 2, { "data.txt": "two" }, { now: new Date(clock) }));
    await server.engine.start({ type: "TestText", version: 2, packageFile: file });
    // Adoption over time in the first group: 1, then 3, then 4 of 4 agents on v2.
    for (const onV2 of [1, 3, 4]) {
      clock += 10 * 60_000;
      for (let i = 0; i < 4; i++) await report(heartbeat(`eng-agent-${i}`, "eng-test", i < onV2 ? 2 : 1));
      await server.tick();
    }
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    vendor?.cleanup();
    rmSync(root, { recursive: true, force: true });
  });

  test("renders groups, versions, progress and the health charts, using nothing but its own origin", async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    const foreign: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(e.message));
    page.on("request", (r) => {
      if (new URL(r.url()).origin !== server.url.origin) foreign.push(r.url());
    });
    // A slow refresh keeps the DOM still while it is measured; the next test exercises refreshing.
    await signIn(page, new URL("/console?refresh=60000", server.url).href);
    expect(await page.locator("#operator").textContent()).toBe("alice");

    const groupRows = await page.$$eval("#groups tbody tr", (rows) =>
      rows.map((r) => [
        r.getAttribute("data-group"),
        r.querySelector(".content")?.textContent,
        r.querySelector(".agents")?.textContent,
      ]),
    );
    expect(groupRows).toEqual([
      ["eng-test", "TestText v2", "4"],
      ["internal", "TestText v1", "0"],
      ["public-1", "TestText v1", "0"],
    ]);
    const section = page.locator("section.release").first();
    expect(await section.getAttribute("data-status")).toBe("active");
    expect(await section.locator('tr[data-group="eng-test"] .phase').textContent()).toBe("soaked");
    expect(await section.locator('tr[data-group="internal"] .phase').textContent()).toBe("pending");

    // The adoption line of eng-test climbs 25 % → 75 % → 100 %: three points, each higher (lower y) than the last.
    const ys = await page.$eval('#chart-adoption polyline[data-group="eng-test"]', (p) =>
      (p.getAttribute("points") ?? "").split(" ").map((xy: string) => Number(xy.split(",")[1])),
    );
    expect(ys).toHaveLength(3);
    expect(ys[0]!).toBeGreaterThan(ys[1]!);
    expect(ys[1]!).toBeGreaterThan(ys[2]!);
    expect(await page.locator("#chart-affected line.threshold").count()).toBe(1);
    const box = await page.locator("#chart-adoption").boundingBox();
    expect(box?.width).toBeGreaterThan(100);

    expect(foreign).toEqual([]);
    expect(problems).toEqual([]);
    await page.close();
  });

  test("follows the rollout by itself: a promotion and an abort show up without a reload", async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(m.text());
    });
    await signIn(page, new URL("/console?refresh=100", server.url).href);
    const phase = (g: string) =>
      `document.querySelector('section.release tr[data-group="${g}"] .phase')?.textContent`;
    // The console's CSP forbids eval, so wait with a function predicate (CDP callFunctionOn), not a string.
    const phaseIs = (g: string, want: string) =>
      page.waitForFunction(
        ({ g, want }) =>
          (
            globalThis as unknown as {
              document: { querySelector(s: string): { textContent: string } | null };
            }
          ).document.querySelector(`section.release tr[data-group="${g}"] .phase`)?.textContent === want,
        { g, want },
        { timeout: WAIT_MS },
      );
    expect(await page.evaluate(phase("internal"))).toBe("pending");

    await server.engine.promote();
    await phaseIs("internal", "live");
    expect(await page.locator('#groups tr[data-group="internal"] .content').textContent()).toBe(
      "TestText v2",
    );

    clock += 60_000;
    for (let i = 0; i < 4; i++) await report(heartbeat(`int-agent-${i}`, "internal", 2, i === 0));
    await server.tick();
    await page.waitForFunction(
      () =>
        (
          globalThis as unknown as {
            document: { querySelector(s: string): { dataset: Record<string, string> } | null };
          }
        ).document.querySelector("section.release")?.dataset.status === "aborted",
      undefined,
      { timeout: WAIT_MS },
    );
    // The page may have fetched the state mid-abort (status aborted, groups "reverting"); it settles by itself.
    await phaseIs("eng-test", "reverted");
    await phaseIs("internal", "reverted");
    expect(await page.evaluate(phase("public-1"))).toBe("untouched");
    expect(await page.locator("p.status-aborted").textContent()).toContain("re-signed as v3");
    expect(await page.locator('#groups tr[data-group="public-1"] .content').textContent()).toBe(
      "TestText v1",
    );
    expect(problems).toEqual([]);
    await page.close();
  });
});

/** The operator login (C1): the console sends a browser to the sign-in form; the token sets a cookie. */
async function signIn(page: import("playwright-core").Page, url: string): Promise<void> {
  await page.goto(url);
  expect(new URL(page.url()).pathname).toBe("/console/login");
  await page.fill('input[name="token"]', OPERATOR);
  await Promise.all([page.waitForURL((u) => u.pathname === "/console"), page.click('button[type="submit"]')]);
  await page.goto(url);
}
