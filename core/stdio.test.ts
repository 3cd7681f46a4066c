import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { captureStdio, redirectStdio, writeAllSync, writeStderr, writeStdout } from "./stdio.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-stdio-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const STDIO = join(import.meta.dir, "stdio.ts");

/** A FIFO with both ends open non-blocking in this process. */
function fifo(name: string): { read: number; write: number } {
  const path = join(dir, name);
  const made = Bun.spawnSync(["mkfifo", path]);
  if (made.exitCode !== 0) throw new Error(`mkfifo failed: ${made.stderr}`);
  const read = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const write = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  return { read, write };
}

/** Runs a script (importing core/stdio.ts as STDIO) and returns its output and exit code. */
async function child(script: string, opts: { stdin?: "ignore" | "pipe" } = {}) {
  const file = join(dir, `child-${Math.random().toString(36).slice(2)}.ts`);
  writeFileSync(file, script.replaceAll("STDIO", JSON.stringify(STDIO)));
  const p = Bun.spawn([process.execPath, file], {
    stdin: opts.stdin ?? "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).arrayBuffer(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { out: new Uint8Array(out), err, code };
}

describe("writeAllSync", () => {
  test("a full non-blocking descriptor is waited on, and every byte arrives in order", () => {
    const { read, write } = fifo("full");
    try {
      const bytes = new Uint8Array(256 * 1024).map((_, i) => (i * 7) % 251);
      const got: Uint8Array[] = [];
      const buf = new Uint8Array(64 * 1024);
      let waits = 0;
      // The "wait" drains the reader, as a slow reader on the other end eventually would.
      const drain = () => {
        waits++;
        for (;;) {
          try {
            const n = readSync(read, buf);
            if (n <= 0) return;
            got.push(buf.slice(0, n));
          } catch {
            return; // EAGAIN: drained
          }
        }
      };
      expect(writeAllSync(write, bytes, drain)).toBe("written");
      drain();
      // A pipe holds 64 KiB: 256 KiB cannot go through without waiting.
      expect(waits).toBeGreaterThan(2);
      expect(Buffer.concat(got).equals(Buffer.from(bytes))).toBe(true);
    } finally {
      closeSync(read);
      closeSync(write);
    }
  });

  test("a reader that has gone is 'closed', not an exception", () => {
    const { read, write } = fifo("gone");
    closeSync(read);
    try {
      expect(writeAllSync(write, new TextEncoder().encode("lost\n"), () => {})).toBe("closed");
    } finally {
      closeSync(write);
    }
  });
});

describe("standard output and error", () => {
  test("a process that exits right after printing 4 MiB to a pipe loses nothing", async () => {
    const r = await child(`
      import { writeStdout, writeStderr } from STDIO;
      writeStdout("x".repeat(4 * 1024 * 1024 - 1) + "\\n");
      writeStderr("done\\n");
      process.exit(0);
    `);
    expect(r.code).toBe(0);
    expect(r.out.length).toBe(4 * 1024 * 1024);
    expect(r.out.at(-1)).toBe(0x0a);
    expect(r.err).toBe("done\n");
  });

  test("output to a reader that closed early ends quietly, exit 0 (a CLI piped into head)", async () => {
    const script = join(dir, "head.ts");
    writeFileSync(
      script,
      `import { writeStdout, writeStderr } from ${JSON.stringify(STDIO)};
       for (let i = 0; i < 20000; i++) writeStdout("line " + i + "\\n");
       writeStderr("finished\\n");`,
    );
    const p = Bun.spawn(
      ["bash", "-c", `"$0" "$1" | head -c 10 >/dev/null; echo "\${PIPESTATUS[0]}"`, process.execPath, script],
      {
        stdout: "pipe",
        stderr: "pipe",
      },
    );
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
    expect(await p.exited).toBe(0);
    expect(out.trim()).toBe("0");
    expect(err).toBe("finished\n");
  });

  test("isTerminal: /dev/null and a pipe are not terminals; a pseudo-terminal is", async () => {
    const probe = `import { isTerminal } from STDIO; console.log(JSON.stringify([0, 1, 2].map((fd) => isTerminal(fd))));`;
    const plain = await child(probe);
    expect(JSON.parse(new TextDecoder().decode(plain.out))).toEqual([false, false, false]);
    // script(1) runs the probe with a pseudo-terminal on all three descriptors.
    const file = join(dir, "tty-probe.ts");
    writeFileSync(file, probe.replaceAll("STDIO", JSON.stringify(STDIO)));
    const p = Bun.spawn(["script", "-qec", `${process.execPath} ${file}`, "/dev/null"], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    p.stdin.end();
    const out = await new Response(p.stdout).text();
    expect(await p.exited).toBe(0);
    expect(out).toContain("[true,true,true]");
  });

  test("redirect and capture take what is written, and restore the descriptors afterwards", async () => {
    const seen: string[] = [];
    const restore = redirectStdio((stream, text) => seen.push(`${stream}:${text}`));
    writeStdout("a");
    writeStderr("b");
    const inner = await captureStdio(() => {
      writeStdout("c");
      return 42;
    });
    writeStdout("d");
    restore();
    expect(seen).toEqual(["stdout:a", "stderr:b", "stdout:d"]);
    expect(inner).toEqual({ result: 42, stdout: "c", stderr: "" });
  });
});
