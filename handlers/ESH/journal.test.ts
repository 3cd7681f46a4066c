/** Journal lines for journal:UNIT sources, from a stand-in journalctl that prints `-o json` records. */
import { afterEach, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JournalReader } from "./journal.ts";

setDefaultTimeout(20_000);
let dir: string | undefined;
let reader: JournalReader | undefined;
afterEach(() => {
  reader?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function until<T>(f: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(10);
  }
}

test("records of the followed units become their lines; other units, garbage and byte-array messages handled", async () => {
  dir = mkdtempSync(join(tmpdir(), "outpost-journal-"));
  const fake = join(dir, "journalctl");
  const records = [
    { _SYSTEMD_UNIT: "systemd-timesyncd.service", MESSAGE: "Timed out waiting for reply from 1.2.3.4:123" },
    { _SYSTEMD_UNIT: "other.service", MESSAGE: "not ours" },
    { _SYSTEMD_UNIT: "systemd-timesyncd.service", MESSAGE: [104, 105] },
  ];
  writeFileSync(
    fake,
    `#!/bin/sh\necho "$@" > "${dir}/args"\n${records.map((r) => `echo '${JSON.stringify(r)}'`).join("\n")}\necho 'not json'\nexec sleep 30\n`,
  );
  chmodSync(fake, 0o755);
  reader = new JournalReader([fake]);
  reader.follow(["systemd-timesyncd.service"]);
  const lines: string[] = [];
  await until(() => {
    for (const l of reader!.take().get("systemd-timesyncd.service") ?? []) lines.push(l);
    return lines.length >= 2 ? true : undefined;
  });
  expect(lines).toEqual(["Timed out waiting for reply from 1.2.3.4:123", "hi"]);
  expect(await Bun.file(join(dir, "args")).text()).toBe(
    "-o json --follow --lines=0 -u systemd-timesyncd.service\n",
  );
});

test("a missing journalctl is reported, not thrown", () => {
  reader = new JournalReader(["/nonexistent/journalctl"]);
  reader.follow(["x.service"]);
  expect(reader.take().size).toBe(0);
  expect(reader.lastError).not.toBeNull();
});
