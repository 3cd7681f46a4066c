/**
 * The compiled agent gives back the pages of its embedded module graph (core/module-graph-pages.ts)
 * along with its code pages. They sit in a writable segment, where that is safe only because Bun
 * never writes them: this runs the real binary and reads its page map from outside — every page of
 * the graph it has mapped must still be the file's own, and the mapped part must shrink once the
 * supervisor has been quiet.
 */
import { expect, test } from "bun:test";
import { closeSync, openSync, readFileSync, readSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { compiledAgentRun } from "./fixtures/compiled.ts";

const isRoot = process.getuid?.() === 0;
const PAGE = 4096;
const run = compiledAgentRun("outpost-binary-code-pages-");

/** The whole pages of the `.bun` section, from the executable's ELF section headers. */
function moduleGraphSection(path: string): { start: number; end: number } {
  const elf = readFileSync(path);
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const names = shoff + elf.readUInt16LE(0x3e) * shentsize;
  const namesOffset = Number(elf.readBigUInt64LE(names + 0x18));
  for (let i = 0; i < shnum; i++) {
    const h = shoff + i * shentsize;
    const nameAt = namesOffset + elf.readUInt32LE(h);
    if (elf.toString("latin1", nameAt, elf.indexOf(0, nameAt)) !== ".bun") continue;
    const addr = Number(elf.readBigUInt64LE(h + 0x10));
    const size = Number(elf.readBigUInt64LE(h + 0x20));
    return { start: Math.ceil(addr / PAGE) * PAGE, end: Math.floor((addr + size) / PAGE) * PAGE };
  }
  throw new Error(`${path}: no .bun section`);
}

/** Pages of `range` the process maps: still the file's, and written (its own copies). */
function mappedPages(pid: number, range: { start: number; end: number }) {
  const pages = (range.end - range.start) / PAGE;
  const bytes = Buffer.alloc(pages * 8);
  const fd = openSync(`/proc/${pid}/pagemap`, "r");
  try {
    readSync(fd, bytes, 0, bytes.length, (range.start / PAGE) * 8);
  } finally {
    closeSync(fd);
  }
  let file = 0;
  let written = 0;
  for (let i = 0; i < pages; i++) {
    const entry = bytes.readBigUInt64LE(i * 8);
    if ((entry & (1n << 63n)) === 0n) continue;
    if ((entry & (1n << 61n)) !== 0n) file++;
    else written++;
  }
  return { file, written };
}

test.skipIf(!isRoot)(
  "the compiled agent never writes its module graph, and gives its pages back when quiet",
  async () => {
    const { work, agentBin } = run;
    const graph = moduleGraphSection(agentBin);
    expect(graph.end - graph.start).toBeGreaterThan(4 << 20);
    const config = join(work, "agent.json");
    writeFileSync(
      config,
      JSON.stringify({
        stateDir: join(work, "state"),
        update: { enabled: false, trust: join(work, "none.pem") },
      }),
    );
    const agent = run.start(["run", "--config", config]);
    const pid = agent.pid;
    let peak = 0;
    let low = Number.POSITIVE_INFINITY;
    let written = 0;
    const deadline = Date.now() + 45_000;
    // Boot maps the graph; the supervisor's first quiet spell (2 s, core/code-release.ts) gives it back.
    while (Date.now() < deadline && !(peak > 256 && low <= peak / 2)) {
      const seen = mappedPages(pid, graph);
      written = Math.max(written, seen.written);
      peak = Math.max(peak, seen.file);
      if (peak > 256) low = Math.min(low, seen.file);
      await Bun.sleep(100);
    }
    expect(agent.exitCode).toBeNull();
    expect(written).toBe(0);
    expect(peak).toBeGreaterThan(256);
    expect(low).toBeLessThanOrEqual(peak / 2);
  },
  60_000,
);
