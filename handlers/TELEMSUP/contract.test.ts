/** TELEMSUP against the external contract: the example packs, installs and loads; telemetry stays off. */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { type ContractRun, installExample } from "../../test/fixtures/cli-contract.ts";

setDefaultTimeout(120_000);
let c: ContractRun | undefined;
afterAll(() => c?.cleanup());

test("examples/TELEMSUP packs, installs with agent update --once and loads (telemetry itself off by default)", async () => {
  c = await installExample("TELEMSUP");
  expect(c.content.find((x) => x.type === "TELEMSUP")).toMatchObject({
    version: 1,
    handlerState: "loaded",
    handlerStatus: { server: "telemetry.outpost.example", verb: "POST", intervalSeconds: 86400 },
  });
  const s = await c.run("agent", "handlers", "call", "TELEMSUP", "settings", "--state", "st", "--json");
  expect(s.code).toBe(0);
});

test("contentctl pack refuses an interval of 0 and a CRLF header", async () => {
  c ??= await installExample("TELEMSUP");
  for (const [patch, want] of [
    [{ interval: 0 }, "TS4"],
    [{ additionalHeaders: "x-a:b\r\nHost: evil" }, "TS5"],
  ] as const) {
    const src = join(c.dir, `bad-${want}`);
    await Bun.write(
      join(src, "telemsup.json"),
      JSON.stringify({
        port: 0,
        resourceRoot: "t",
        server: "t.example.com",
        verb: "PUT",
        interval: 3600,
        ...patch,
      }),
    );
    const r = await c.run(
      "contentctl",
      "pack",
      "--type",
      "TELEMSUP",
      "--version",
      "2",
      "--keys",
      "k",
      "--out",
      "x.tar",
      src,
      "--json",
    );
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: "HND_TELEMSUP_INVALID" });
    expect(JSON.parse(r.stdout).error.message).toContain(want);
  }
});
