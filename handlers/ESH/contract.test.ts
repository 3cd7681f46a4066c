/** ESH against the external contract: examples pack, install and load with the real CLIs and hosts. */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ContractRun, installExample } from "../../test/fixtures/cli-contract.ts";

setDefaultTimeout(120_000);
let c: ContractRun | undefined;
afterAll(() => c?.cleanup());

test("examples/ESH packs, installs with agent update --once, and loads; agent selfhelp answers", async () => {
  c = await installExample("ESH");
  const esh = c.content.find((x) => x.type === "ESH");
  expect(esh).toMatchObject({ type: "ESH", version: 1, handlerState: "loaded", handlerStatus: { rules: 5 } });
  const help = await c.run("agent", "selfhelp", "--state", "st", "--json");
  expect(help.code).toBe(0);
  expect(JSON.parse(help.stdout)).toMatchObject({ version: 1, rules: 5, findings: [] });
});

test("contentctl pack refuses a backreference naming the file and line, and writes nothing", async () => {
  c ??= await installExample("ESH");
  const src = join(c.dir, "bad");
  mkdirSync(src, { recursive: true });
  const ok = JSON.stringify({
    id: "a",
    logs: ["agent"],
    pattern: "x",
    windowSeconds: 60,
    kba: { id: "KBA-1", url: "https://kb.example.com/1", title: "t" },
  });
  writeFileSync(
    join(src, "r.jsonl"),
    `# rules\n${ok}\n${ok.replace('"a"', '"b"').replace('"x"', '"(a)\\\\1"')}\n`,
  );
  const r = await c.run(
    "contentctl",
    "pack",
    "--type",
    "ESH",
    "--version",
    "2",
    "--keys",
    "k",
    "--out",
    "bad.tar",
    src,
    "--json",
  );
  expect(r.code).toBe(3);
  const err = JSON.parse(r.stdout).error;
  expect(err.code).toBe("HND_ESH_INVALID");
  expect(err.message).toContain(`${join(src, "r.jsonl")}:3: b: E3`);
  expect(await Bun.file(join(c.dir, "bad.tar")).exists()).toBe(false);
});
