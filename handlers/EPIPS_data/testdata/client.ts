/**
 * Test client run inside a network namespace; prints one JSON line.
 *   tcp HOST PORT PAYLOAD TIMEOUT_MS       → {ok, reply, ms}
 *   udp-flood HOST PORT DURATION_MS SIZE   → {sent}
 *   tcp-bench HOST PORT COUNT SIZE         → {ms: number[], bytes}  (request/response round trips)
 *   tcp-bulk HOST PORT MEGABYTES           → {ms, bytes}  (one-way transfer to the sink)
 */
import { createSocket } from "node:dgram";
import { connect } from "node:net";

const [mode, host, portText, a, b] = process.argv.slice(2);
const port = Number(portText);

function tcpOnce(payload: string, timeoutMs: number): Promise<{ ok: boolean; reply: string; ms: number }> {
  const t = performance.now();
  return new Promise((resolve) => {
    let reply = "";
    const sock = connect({ host: host!, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ ok, reply, ms: performance.now() - t });
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on("connect", () => sock.write(payload));
    sock.on("data", (d) => {
      reply += d.toString();
      if (reply.length >= payload.length + 3) done(true);
    });
    sock.on("error", () => done(false));
  });
}

if (mode === "tcp") {
  console.log(JSON.stringify(await tcpOnce(a!, Number(b))));
} else if (mode === "udp-flood") {
  const s = createSocket("udp4");
  const buf = Buffer.alloc(Number(b), 0x41);
  const end = performance.now() + Number(a);
  let sent = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 200; i++) {
      s.send(buf, port, host!);
      sent++;
    }
    await new Promise((r) => setImmediate(r));
  }
  s.close();
  console.log(JSON.stringify({ sent }));
} else if (mode === "tcp-bench") {
  // One connection, COUNT request/response round trips of SIZE bytes: added latency per packet.
  const count = Number(a);
  const payload = "x".repeat(Number(b));
  const sock = connect({ host: host!, port });
  await new Promise((r) => sock.once("connect", r));
  sock.setNoDelay(true);
  const ms: number[] = [];
  let pending: (() => void) | undefined;
  let got = 0;
  sock.on("data", (d) => {
    got += d.length;
    if (got >= payload.length + 3) {
      got = 0;
      pending?.();
    }
  });
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await new Promise<void>((r) => {
      pending = r;
      sock.write(payload);
    });
    ms.push(performance.now() - t);
  }
  const total = performance.now() - t0;
  sock.destroy();
  console.log(JSON.stringify({ ms, totalMs: total, bytes: count * payload.length }));
}
if (mode === "tcp-bulk") {
  const total = Number(a) * 1024 * 1024;
  const sock = connect({ host: host!, port });
  await new Promise((r) => sock.once("connect", r));
  const t0 = performance.now();
  const done = new Promise((r) => sock.once("data", r));
  const header = Buffer.alloc(8);
  header.writeBigUInt64BE(BigInt(total + 8), 0);
  sock.write(header);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let sent = 0;
  while (sent < total) {
    const n = Math.min(chunk.length, total - sent);
    if (!sock.write(n === chunk.length ? chunk : chunk.subarray(0, n)))
      await new Promise((r) => sock.once("drain", r));
    sent += n;
  }
  await done;
  const ms = performance.now() - t0;
  sock.destroy();
  console.log(JSON.stringify({ ms, bytes: total }));
}
process.exit(0);
