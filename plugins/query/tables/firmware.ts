/**
 * Firmware and CPU tables: CPU features (CPUID, as the kernel decoded it),
 * SMBIOS structures and ACPI tables, read from /proc and /sys/firmware
 * (root only). A VM without them, or a non-x86 CPU for cpuid, gets no rows.
 */
import { statSync } from "node:fs";
import type { GenContext, Row, TableDef } from "./context.ts";
import { listDir, readBytes, readText } from "./read.ts";
import { I, T, table } from "./schema.ts";

const cols = (...names: string[]): [string, "TEXT"][] => names.map((n) => [n, T]);
/** x86 CPUID feature bits by /proc/cpuinfo flag name: [input eax, register, bit] (Intel SDM vol. 2A, CPUID). */
const CPUID_BITS: [string, string, number][] = [
  ...[
    "fpu",
    "vme",
    "de",
    "pse",
    "tsc",
    "msr",
    "pae",
    "mce",
    "cx8",
    "apic",
    "",
    "sep",
    "mtrr",
    "pge",
    "mca",
    "cmov",
    "pat",
    "pse36",
    "pn",
    "clflush",
    "",
    "dts",
    "acpi",
    "mmx",
    "fxsr",
    "sse",
    "sse2",
    "ss",
    "ht",
    "tm",
    "ia64",
    "pbe",
  ].map((f, bit): [string, string, number] => [f, "1:edx", bit]),
  ...[
    "pni",
    "pclmulqdq",
    "dtes64",
    "monitor",
    "ds_cpl",
    "vmx",
    "smx",
    "est",
    "tm2",
    "ssse3",
    "cid",
    "sdbg",
    "fma",
    "cx16",
    "xtpr",
    "pdcm",
    "",
    "pcid",
    "dca",
    "sse4_1",
    "sse4_2",
    "x2apic",
    "movbe",
    "popcnt",
    "tsc_deadline_timer",
    "aes",
    "xsave",
    "osxsave",
    "avx",
    "f16c",
    "rdrand",
    "hypervisor",
  ].map((f, bit): [string, string, number] => [f, "1:ecx", bit]),
  ...[
    "fsgsbase",
    "tsc_adjust",
    "sgx",
    "bmi1",
    "hle",
    "avx2",
    "",
    "smep",
    "bmi2",
    "erms",
    "invpcid",
    "rtm",
    "",
    "",
    "mpx",
    "",
    "avx512f",
    "avx512dq",
    "rdseed",
    "adx",
    "smap",
    "avx512ifma",
    "",
    "clflushopt",
    "clwb",
    "",
    "avx512pf",
    "avx512er",
    "avx512cd",
    "sha_ni",
    "avx512bw",
    "avx512vl",
  ].map((f, bit): [string, string, number] => [f, "7:ebx", bit]),
].filter(([f]) => f !== "");

/**
 * CPU features as CPUID reports them, from the kernel's decoding of CPUID in
 * /proc/cpuinfo (JavaScript cannot execute CPUID). x86 only, as in osquery.
 */
export function genCpuid(ctx: GenContext): Row[] {
  const cpuinfo = readText(`${ctx.root}/proc/cpuinfo`) ?? "";
  const flagsLine = /^flags\s*:\s*(.*)$/m.exec(cpuinfo)?.[1];
  if (flagsLine === undefined) return [];
  const flags = new Set(flagsLine.split(/\s+/));
  const field = (n: string) => new RegExp(`^${n}\\s*:\\s*(.*)$`, "m").exec(cpuinfo)?.[1]?.trim() ?? "";
  const rows: Row[] = [
    {
      feature: "vendor",
      value: field("vendor_id"),
      output_register: "ebx,edx,ecx",
      output_bit: 0,
      input_eax: "0",
    },
    {
      feature: "product_name",
      value: field("model name"),
      output_register: "eax,ebx,ecx,edx",
      output_bit: 0,
      input_eax: "0x80000002",
    },
  ];
  for (const [flag, where, bit] of CPUID_BITS) {
    const [eax, register] = where.split(":");
    rows.push({
      feature: flag === "pni" ? "sse3" : flag,
      value: flags.has(flag) ? "1" : "0",
      output_register: register!,
      output_bit: bit,
      input_eax: eax!,
    });
  }
  return rows;
}

/** SMBIOS structure types (DMTF DSP0134). */
const SMBIOS_TYPES: Record<number, string> = {
  0: "BIOS Information",
  1: "System Information",
  2: "Base Board or Module Information",
  3: "System Enclosure or Chassis",
  4: "Processor Information",
  7: "Cache Information",
  8: "Port Connector Information",
  9: "System Slots",
  10: "On Board Devices Information",
  11: "OEM Strings",
  12: "System Configuration Options",
  13: "BIOS Language Information",
  15: "System Event Log",
  16: "Physical Memory Array",
  17: "Memory Device",
  19: "Memory Array Mapped Address",
  20: "Memory Device Mapped Address",
  21: "Built-in Pointing Device",
  22: "Portable Battery",
  23: "System Reset",
  24: "Hardware Security",
  26: "Voltage Probe",
  27: "Cooling Device",
  28: "Temperature Probe",
  29: "Electrical Current Probe",
  32: "System Boot Information",
  38: "IPMI Device Information",
  39: "System Power Supply",
  41: "Onboard Devices Extended Information",
  43: "TPM Device",
  127: "End-of-Table",
};

/** Walks the raw SMBIOS structure table: formatted area (type, length, handle) then strings up to a double NUL. */
export function parseSmbios(bytes: Buffer): Row[] {
  const rows: Row[] = [];
  let off = 0;
  for (let number = 0; off + 4 <= bytes.length; number++) {
    const type = bytes[off]!;
    const length = bytes[off + 1]!;
    if (length < 4) break;
    let end = off + length;
    while (end + 1 < bytes.length && !(bytes[end] === 0 && bytes[end + 1] === 0)) end++;
    end = Math.min(end + 2, bytes.length);
    rows.push({
      number,
      type,
      description: SMBIOS_TYPES[type] ?? (type >= 128 ? "OEM-specific Type" : "Unknown"),
      handle: bytes.readUInt16LE(off + 2),
      header_size: length,
      size: end - off,
      md5: new Bun.CryptoHasher("md5").update(bytes.subarray(off, end)).digest("hex"),
    });
    off = end;
    if (type === 127) break;
  }
  return rows;
}

export function genSmbiosTables(ctx: GenContext): Row[] {
  const bytes = readBytes(`${ctx.root}/sys/firmware/dmi/tables/DMI`);
  return bytes ? parseSmbios(bytes) : [];
}

export function genAcpiTables(ctx: GenContext): Row[] {
  const base = `${ctx.root}/sys/firmware/acpi/tables`;
  const rows: Row[] = [];
  for (const name of listDir(base)) {
    try {
      if (!statSync(`${base}/${name}`).isFile()) continue;
    } catch {
      continue;
    }
    const bytes = readBytes(`${base}/${name}`);
    if (!bytes) continue;
    rows.push({ name, size: bytes.length, md5: new Bun.CryptoHasher("md5").update(bytes).digest("hex") });
  }
  return rows;
}

export const FIRMWARE_TABLES: TableDef[] = [
  {
    schema: table("cpuid", "Useful CPU features from the cpuid ASM call.", [
      ...cols("feature", "value", "output_register"),
      ["output_bit", I],
      ["input_eax", T],
    ]),
    gen: genCpuid,
  },
  {
    schema: table("smbios_tables", "BIOS (DMI) structure common details and content.", [
      ["number", I],
      ["type", I],
      ["description", T],
      ["handle", I],
      ["header_size", I],
      ["size", I],
      ["md5", T],
    ]),
    gen: genSmbiosTables,
  },
  {
    schema: table("acpi_tables", "Firmware ACPI functional table common metadata and content.", [
      ["name", T],
      ["size", I],
      ["md5", T],
    ]),
    gen: genAcpiTables,
  },
];
