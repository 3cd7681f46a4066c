/**
 * Test server run inside a network namespace: TCP echo on argv[2] answering
 * "OK:<data>", UDP sink on argv[3], and (optional argv[4]) a TCP sink that
 * answers "DONE" once it has read the byte count the client's first 8 bytes
 * announce (bulk throughput). Prints "ready" once all listen.
 */
import { createSocket } from "node:dgram";

const tcpPort = Number(process.argv[2]);
const udpPort = Number(process.argv[3]);
Bun.listen({
  hostname: "0.0.0.0",
  port: tcpPort,
  socket: {
    data(s, d) {
      s.write(`OK:${d.toString()}`);
    },
  },
});
if (process.argv[4]) {
  Bun.listen<{ want: number; got: number }>({
    hostname: "0.0.0.0",
    port: Number(process.argv[4]),
    socket: {
      open(s) {
        s.data = { want: -1, got: 0 };
      },
      data(s, d) {
        if (s.data.want < 0) s.data.want = Number(d.readBigUInt64BE(0));
        s.data.got += d.length;
        if (s.data.got >= s.data.want) s.write("DONE");
      },
    },
  });
}
const udp = createSocket("udp4");
// A sink, not an echo: a flood must not keep this process too busy to answer TCP.
let udpReceived = 0;
udp.on("message", () => {
  udpReceived++;
});
process.on("SIGUSR1", () => console.log(JSON.stringify({ udpReceived })));
udp.bind(udpPort, "0.0.0.0", () => console.log("ready"));
