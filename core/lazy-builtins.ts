/**
 * node builtins that are required on first use instead of imported. In Bun,
 * evaluating node:crypto, node:net, node:dgram or node:zlib builds node's
 * stream classes: measured on a compiled binary, 18–20 ms of CPU and
 * ~2 MiB of heap per process (issue 21; core/stdio.ts does the same for
 * stdout and stderr). Every process — the supervisor, each host, each CLI
 * run — paid that at start for code most of them never reach: a syslog sink
 * nobody configured, an SXL lookup a one-shot scan never makes, a rule file
 * that is not encrypted. Builtins need no file access, so the first use may
 * come after a host has locked itself down (Landlock).
 *
 * Hashes, random bytes and UUIDs need none of these: Bun.CryptoHasher,
 * crypto.getRandomValues and crypto.randomUUID are native.
 */
import type * as NodeCrypto from "node:crypto";
import type * as NodeDgram from "node:dgram";
import type * as NodeNet from "node:net";
import type * as NodeZlib from "node:zlib";

function once<T>(load: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= load());
}

/** node:crypto, for what Bun has no native form of (AES-GCM ciphers). */
export const nodeCrypto = once(() => require("node:crypto") as typeof NodeCrypto);
/** node:net (TCP and unix-socket clients). */
export const nodeNet = once(() => require("node:net") as typeof NodeNet);
/** node:dgram (UDP sockets). */
export const nodeDgram = once(() => require("node:dgram") as typeof NodeDgram);
/** node:zlib, for streaming and bounded inflation (Bun.gunzipSync has no output cap). */
export const nodeZlib = once(() => require("node:zlib") as typeof NodeZlib);
