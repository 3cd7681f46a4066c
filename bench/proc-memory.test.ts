import { expect, test } from "bun:test";
import { parseSmaps, processTree, pssOf, TreeCpuMeter } from "./proc-memory.ts";

const SMAPS = `55d0c0000000-55d0c4000000 r-xp 00000000 fe:00 123 /opt/outpost/agent
Rss:                4096 kB
Pss:                1024 kB
Private_Clean:       512 kB
Private_Dirty:         0 kB
7f0000000000-7f0000100000 rw-p 00000000 00:00 0
Rss:                1024 kB
Pss:                1024 kB
Private_Clean:         0 kB
Private_Dirty:      1024 kB
7f0000200000-7f0000300000 r--p 00000000 fe:00 9 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 100 kB
Pss:                  50 kB
Private_Clean:         0 kB
Private_Dirty:         0 kB
7f0000400000-7f0000500000 rw-p 00000000 00:00 0                          [heap]
Rss:                 300 kB
Pss:                 300 kB
Private_Clean:         0 kB
Private_Dirty:       300 kB
7f0000600000-7f0000700000 r--p 00000000 fe:00 77 /tmp/spill (deleted)
Rss:                  10 kB
Pss:                  10 kB
Private_Clean:        10 kB
Private_Dirty:         0 kB
`;

test("smaps: PSS split into the executable, anonymous memory and other files; USS and RSS summed", () => {
  expect(parseSmaps(SMAPS, "/opt/outpost/agent", 7)).toEqual({
    pid: 7,
    pss: 2408,
    binary: 1024,
    anon: 1324,
    files: 60,
    uss: 1846,
    rss: 5530,
  });
  // Another executable's pages are just files.
  expect(parseSmaps(SMAPS, "/usr/bin/other").binary).toBe(0);
});

test("this process: a tree rooted at it, and a breakdown that adds up", () => {
  expect(processTree(process.pid)[0]).toBe(process.pid);
  const m = pssOf(process.pid)!;
  expect(m.pss).toBeGreaterThan(0);
  expect(m.binary + m.anon + m.files).toBe(m.pss);
  expect(m.binary).toBeGreaterThan(0);
  expect(pssOf(2 ** 22 + 1)).toBeNull();
});

test("TreeCpuMeter: a child's CPU in the window, as the kernel counts it, including a thread born in it", async () => {
  // A child that idles until told, then spins ~150 ms in a new worker thread (kept alive), and
  // reports its own CPU time (every thread, by the kernel) at both ends of the window.
  const child = Bun.spawn(
    [
      process.execPath,
      "-e",
      `const cpu = () => { const u = process.cpuUsage(); return u.user + u.system; };
       console.log("ready " + cpu());
       process.stdin.once("data", () => {
         const w = new Worker(URL.createObjectURL(new Blob([
           // The interval keeps the thread alive: a worker with nothing left to do ends, and its time with it.
           "const t = performance.now(); while (performance.now() - t < 150) {} postMessage(0); setInterval(() => {}, 1e9);",
         ])));
         w.onmessage = () => console.log("done " + cpu());
       });`,
    ],
    { stdin: "pipe", stdout: "pipe", stderr: "inherit" },
  );
  try {
    const reader = child.stdout.getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the child exited");
      out += new TextDecoder().decode(value);
    }
    const meter = new TreeCpuMeter(() => processTree(child.pid));
    child.stdin.write("go\n");
    child.stdin.flush();
    while (!/done \d+\n/.test(out)) {
      meter.sample();
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    meter.sample();
    const { total, perPid } = meter.used();
    const [from, to] = [/ready (\d+)/, /done (\d+)/].map((re) => Number(re.exec(out)![1]) * 1000);
    const kernel = to! - from!;
    // The spin got some CPU however loaded the machine (the child's own count says how much), and the
    // meter saw it: without the thread born in the window it would miss most of `kernel`.
    expect(kernel).toBeGreaterThan(30e6);
    expect(total).toBeGreaterThan(kernel * 0.8);
    expect(total).toBeLessThan(kernel + 100e6);
    expect(perPid.get(child.pid)).toBe(total);
  } finally {
    child.kill();
    await child.exited;
  }
}, 20_000);
