import { describe, expect, test } from "bun:test";
import { procSource, procViewParts } from "./proc-source.ts";

describe("process view source", () => {
  test("a query takes only the parts its tables read", () => {
    expect(procViewParts("select * from os_version")).toEqual([]);
    expect(procViewParts("SELECT p.cwd FROM processes p")).toEqual(["links"]);
    expect(procViewParts("select * from listening_ports l join processes using (pid)")).toEqual([
      "fds",
      "links",
    ]);
    expect(procViewParts("select * from process_envs; select * from process_memory_map")).toEqual([
      "environ",
      "maps",
    ]);
    expect(procViewParts("select * from processes_extra")).toEqual([]);
  });

  test("processes without a link column (path, on_disk, cwd, root) needs no view; * and NATURAL joins do", () => {
    expect(procViewParts("SELECT pid, name FROM processes WHERE pid = 1")).toEqual([]);
    expect(procViewParts("select count(1) from processes where uid = 0")).toEqual([]);
    expect(procViewParts("SELECT pid FROM processes WHERE on_disk = 0")).toEqual(["links"]);
    expect(procViewParts('SELECT name, p."root" FROM processes p')).toEqual(["links"]);
    expect(procViewParts("SELECT * FROM processes WHERE pid = 1")).toEqual(["links"]);
    expect(procViewParts("SELECT p.* FROM processes p")).toEqual(["links"]);
    expect(procViewParts("select pid from processes natural join process_open_files")).toEqual([
      "fds",
      "links",
    ]);
    // Another table's need stands on its own.
    expect(procViewParts("select pid, port from listening_ports join processes using (pid)")).toEqual([
      "fds",
      "links",
    ]);
  });

  test("the view wins where it has the process; others are read directly", () => {
    const src = procSource({
      root: "",
      introspection: {
        procView: {
          takenAt: 0,
          truncated: false,
          procs: { "999999999": { cwd: "/from/view", fds: [[3, "socket:[1]"]], environ: "X=1\0" } },
        },
      },
    });
    expect(src.link("999999999", "cwd")).toBe("/from/view");
    expect(src.fds("999999999")).toEqual([[3, "socket:[1]"]]);
    expect(src.environ("999999999")).toBe("X=1\0");
    expect(src.link(String(process.pid), "cwd")).toBe(process.cwd());
    expect(src.link("999999998", "exe")).toBeUndefined();
  });
});
