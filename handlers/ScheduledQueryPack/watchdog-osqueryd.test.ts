/**
 * The watched query worker with the osqueryd back end: the scheduler's
 * worker forwards to a real osqueryd (here a Thrift server implementing
 * osquery's ExtensionManager IDL) when the settings say so. Lives here, not
 * beside the back end, because plugins/ must not import handlers/.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type FakeOsqueryd, startFakeOsqueryd } from "../../plugins/query/testdata/fake-osqueryd.ts";
import { DEFAULT_LIMITS, QueryRunner } from "./watchdog.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-watchdog-osqueryd-"));
let fake: FakeOsqueryd;

beforeAll(async () => {
  fake = await startFakeOsqueryd(join(dir, "osquery.em"), {
    osquery_info: [{ version: "5.12.0", pid: "1" }],
  });
});
afterAll(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

test("the watched worker runs queries on osqueryd when configured", async () => {
  const runner = new QueryRunner({
    settings: { engine: "osqueryd", osquerySocket: fake.socket, osqueryTimeoutMs: 2000 },
  });
  try {
    const before = fake.queries.length;
    const out = await runner.run("select * from osquery_info", DEFAULT_LIMITS);
    expect(out.result.rows).toEqual([{ version: "5.12.0", pid: "1" }]);
    expect(fake.queries.length).toBeGreaterThan(before);
    expect(await runner.tables()).toContain("osquery_info");
  } finally {
    await runner.stop();
  }
});
