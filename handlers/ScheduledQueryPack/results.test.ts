import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { calendarTime, DiffStore, diffRows, processResults } from "./results.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-results-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const at = new Date("2024-08-05T12:10:57Z");
const opts = { hostIdentifier: "host-1", at, epoch: 0, eventFormat: true };
const rows = (...names: string[]) => names.map((name, i) => ({ pid: String(i + 1), name }));

describe("osquery log format", () => {
  test("calendarTime is asctime in UTC with a space-padded day", () => {
    expect(calendarTime(at)).toBe("Mon Aug  5 12:10:57 2024 UTC");
    expect(calendarTime(new Date("2014-08-25T12:10:57Z"))).toBe("Mon Aug 25 12:10:57 2014 UTC");
  });

  test("multiset difference", () => {
    expect(diffRows(["a", "b", "b"], ["b", "c"])).toEqual({ added: ["c"], removed: ["a", "b"] });
  });
});

describe("differential results", () => {
  const store = new DiffStore(join(dir, "state"));
  const q = {
    logName: "pack_p_procs",
    sql: "select pid, name from processes",
    snapshot: false,
    removed: true,
  };

  test("first run: every row added, counter 0, in event format", () => {
    const out = processResults(store, q, rows("init", "sshd"), opts);
    expect(out.counter).toBe(0);
    expect(out.lines.map((l) => JSON.parse(l))).toEqual([
      {
        name: "pack_p_procs",
        hostIdentifier: "host-1",
        calendarTime: "Mon Aug  5 12:10:57 2024 UTC",
        unixTime: 1722859857,
        epoch: 0,
        counter: 0,
        numerics: false,
        columns: { pid: "1", name: "init" },
        action: "added",
      },
      expect.objectContaining({ columns: { pid: "2", name: "sshd" }, action: "added" }),
    ]);
    // Key order follows osqueryd's output.
    expect(Object.keys(JSON.parse(out.lines[0]!))).toEqual([
      "name",
      "hostIdentifier",
      "calendarTime",
      "unixTime",
      "epoch",
      "counter",
      "numerics",
      "columns",
      "action",
    ]);
    store.save(out.next!);
  });

  test("unchanged results log nothing", () => {
    const out = processResults(store, q, rows("init", "sshd"), opts);
    expect(out.lines).toEqual([]);
    expect(out.next).toBeUndefined();
  });

  test("a change logs removed and added rows with the next counter", () => {
    const out = processResults(
      store,
      q,
      [
        { pid: "1", name: "init" },
        { pid: "3", name: "nc" },
      ],
      opts,
    );
    expect(out.counter).toBe(1);
    expect(
      out.lines.map((l) => [JSON.parse(l).action, JSON.parse(l).columns.name, JSON.parse(l).counter]),
    ).toEqual([
      ["removed", "sshd", 1],
      ["added", "nc", 1],
    ]);
    store.save(out.next!);
  });

  test("removed: false reports additions only", () => {
    const out = processResults(store, { ...q, removed: false }, [{ pid: "1", name: "init" }], opts);
    expect(out.lines).toEqual([]);
    expect(out.removed).toBe(0);
  });

  test("batch format: one diffResults line", () => {
    const out = processResults(
      store,
      q,
      [
        { pid: "1", name: "init" },
        { pid: "4", name: "cron" },
      ],
      { ...opts, eventFormat: false },
    );
    const line = JSON.parse(out.lines[0]!);
    expect(out.lines).toHaveLength(1);
    expect(line.diffResults).toEqual({
      removed: [{ pid: "3", name: "nc" }],
      added: [{ pid: "4", name: "cron" }],
    });
    expect(Object.keys(line)[0]).toBe("diffResults");
  });

  test("a new epoch or new SQL starts over at counter 0", () => {
    expect(processResults(store, q, rows("init"), { ...opts, epoch: 7 }).counter).toBe(0);
    expect(
      processResults(store, { ...q, sql: "select pid, name from processes limit 1" }, rows("init"), opts)
        .counter,
    ).toBe(0);
  });

  test("snapshots log every row each run, with no state", () => {
    const snap = { ...q, logName: "pack_p_snap", snapshot: true };
    const out = processResults(store, snap, rows("init", "sshd"), opts);
    const line = JSON.parse(out.lines[0]!);
    expect(Object.keys(line).slice(0, 3)).toEqual(["snapshot", "action", "name"]);
    expect(line).toMatchObject({ action: "snapshot", counter: 0, snapshot: rows("init", "sshd") });
    expect(out.next).toBeUndefined();
  });
});
