/**
 * Test server run inside a network namespace: TCP echo on argv[2] answering
 * "OK:<data>", UDP echo on argv[3]. Prints "ready" once both listen.
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
const udp = createSocket("udp4");
udp.on("message", (msg, rinfo) => udp.send(msg, rinfo.port, rinfo.address));
udp.bind(udpPort, "0.0.0.0", () => console.log("ready"));
