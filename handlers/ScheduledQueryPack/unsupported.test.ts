/**
 * Unsupported queries are known at load for both engines: the embedded
 * registry, and osqueryd's `osquery_registry` (here a Thrift server speaking
 * osquery's extension protocol, with its own table list).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ContentHandler } from "../../core/handler/contract.ts";
import { type FakeOsqueryd, startFakeOsqueryd } from "../../plugins/query/testdata/fake-osqueryd.ts";
import { createScheduledQueryPackHandler, type Loaded } from "./index.ts";
import { capsFor, pack, viewOf } from "./testutil.ts";
import { missingTable } from "./unsupported.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-unsupported-"));
let fake: FakeOsqueryd;
beforeAll(async () => {
  // osqueryd here has an extra table the embedded engine lacks.
  fake = await startFakeOsqueryd(join(dir, "osquery.em"), { launchd: [{ label: "x" }] });
});
afterAll(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("missingTable", () => {
  const tables = new Set(["processes", "users", "file"]);
  test("names the first table the list lacks, through joins and subqueries", () => {
    expect(missingTable("select * from processes join users using (uid)", tables)).toBeUndefined();
    expect(missingTable("select * from processes p join launchd l on p.name = l.label", tables)).toBe(
      "launchd",
    );
    expect(missingTable("select * from users where uid in (select uid from kernel_extensions)", tables)).toBe(
      "kernel_extensions",
    );
    // osquery functions are known, so they do not hide the tables.
    expect(missingTable("select split(name, '.', 0) from nvram", tables)).toBe("nvram");
    // Other SQL problems are osqueryd's to report at run time.
    expect(missingTable("select nope from processes", tables)).toBeUndefined();
  });
});

describe("load", () => {
  test(
    "with the osqueryd engine, the registry's table list marks unsupported queries",
    async () => {
      const handler = createScheduledQueryPackHandler({ runner: { checkMs: 50 } }) as ContentHandler<Loaded>;
      const view = viewOf({
        "packs/p.conf": pack({
          both: { query: "select name from processes" },
          osqueryd_only: { query: "select * from launchd" },
          neither: { query: "select * from kernel_extensions" },
        }),
      });
      await handler.validate(view);
      const { caps } = capsFor(handler as ContentHandler<unknown>);
      const l = await handler.load(view, caps);
      try {
        const unsupported = async () =>
          Object.fromEntries(
            (
              (await handler.call!(l, "packs", {})) as {
                packs: { scheduled: { name: string; unsupported?: string }[] }[];
              }
            ).packs[0]!.scheduled.map((q) => [q.name, q.unsupported ?? null]),
          );
        expect(await unsupported()).toEqual({
          pack_p_both: null,
          pack_p_osqueryd_only: "no such table: launchd (embedded engine)",
          pack_p_neither: "no such table: kernel_extensions (embedded engine)",
        });
        await handler.call!(l, "configure", { engine: "osqueryd", osquerySocket: fake.socket });
        const want = {
          pack_p_both: null,
          pack_p_osqueryd_only: null,
          pack_p_neither: "no such table: kernel_extensions (osqueryd's registry)",
        };
        const deadline = Date.now() + 10_000;
        let got = await unsupported();
        while (JSON.stringify(got) !== JSON.stringify(want) && Date.now() < deadline) {
          await Bun.sleep(20);
          got = await unsupported();
        }
        expect(got).toEqual(want);
      } finally {
        await handler.unload!(l);
      }
    },
    { timeout: 30_000 },
  );
});
