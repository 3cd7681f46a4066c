/**
 * Run by network.test.ts inside a fresh network namespace (`unshare -n`),
 * so the nftables rule and the nfnetlink_log group are private to the test:
 * starts the network sensor, makes TCP connections over loopback (IPv4 and
 * IPv6), waits (bounded) for their events, stops the sensor, and prints
 * one JSON line: what the sensor saw, whether its table was removed, and
 * which group a second sensor got.
 */
import { NetworkSensor, nftSensorTable } from "../network.ts";

const run = (cmd: string[]) => Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
run(["ip", "link", "set", "lo", "up"]);
const count = Number(process.argv[2] ?? "20");
const events: Record<string, unknown>[] = [];
const sensor = new NetworkSensor({ mode: "nflog", group: 3471, publish: (e) => events.push(...e) });
sensor.start();
const ports: number[] = [];
if (sensor.sensor === "nflog") {
  for (const hostname of ["127.0.0.1", "::1"]) {
    const server = Bun.listen({ hostname, port: 0, socket: { data() {} } });
    for (let i = 0; i < count / 2; i++) {
      const c = await Bun.connect({ hostname, port: server.port, socket: { data() {} } });
      c.end();
    }
    ports.push(server.port);
    server.stop(true);
  }
  const deadline = Date.now() + 10_000;
  while (events.length < count && Date.now() < deadline) await Bun.sleep(10);
}
// A second agent in the same namespace takes the next free group and a table of its own.
const second = new NetworkSensor({ mode: "nflog", group: 3471, publish: () => {} });
second.start();
const secondGroup = second.group;
await second.stop();
const tableWhileRunning = run(["nft", "list", "table", "inet", nftSensorTable(sensor.group)]).exitCode === 0;
const status = sensor.status();
await sensor.stop();
const tableAfterStop = run(["nft", "list", "table", "inet", nftSensorTable(sensor.group)]).exitCode === 0;
console.log(
  JSON.stringify({
    sensor: status,
    events,
    ports,
    uid: process.getuid?.(),
    tableWhileRunning,
    tableAfterStop,
    secondGroup,
  }),
);
