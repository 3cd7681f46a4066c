/** Only a well-formed, payload-less, flag-neutral TCP ACK skips the engine. */
import { expect, test } from "bun:test";
import { isPureAck } from "./fastpath.ts";
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from "./packet.ts";
import { packet } from "./testutil.ts";

test("pure ACKs (v4 and v6) skip; payload, SYN/FIN/RST, UDP, fragments and malformed packets do not", () => {
  expect(isPureAck(packet({ flags: TCP_ACK }))).toBe(true);
  expect(isPureAck(packet({ src: "2001:db8::1", dst: "2001:db8::2", flags: TCP_ACK }))).toBe(true);
  expect(isPureAck(packet({ flags: TCP_ACK, payload: "x" }))).toBe(false);
  for (const f of [TCP_SYN, TCP_SYN | TCP_ACK, TCP_FIN | TCP_ACK, TCP_RST | TCP_ACK, 0]) {
    expect(isPureAck(packet({ flags: f }))).toBe(false);
  }
  expect(isPureAck(packet({ proto: "udp" }))).toBe(false);
  const frag = packet({ flags: TCP_ACK });
  frag[6] = 0x20; // more fragments
  expect(isPureAck(frag)).toBe(false);
  const lying = packet({ flags: TCP_ACK });
  lying[3] = 0xff; // total length past the buffer
  expect(isPureAck(lying)).toBe(false);
  expect(isPureAck(new Uint8Array([0x45]))).toBe(false);
  expect(isPureAck(packet({ flags: TCP_ACK }).slice(0, 30))).toBe(false);
});
