/**
 * Block storage tables: block devices (sysfs + udev's database, where blkid
 * results live) and which of them are dm-crypt encrypted — osquery reads
 * the same through libudev, libblkid and libcryptsetup.
 */
import type { GenContext, Row, TableDef } from "./context.ts";
import { attr, listDir, readText } from "./read.ts";
import { B, I, T, table } from "./schema.ts";

/** udev's stored properties of a block device (`E:KEY=value` lines of /run/udev/data/b<major>:<minor>). */
function udevProps(root: string, dev: string): Map<string, string> {
  const m = new Map<string, string>();
  const text = readText(`${root}/run/udev/data/b${dev}`) ?? "";
  for (const line of text.split("\n")) {
    const kv = /^E:([^=]+)=(.*)$/.exec(line);
    if (kv) m.set(kv[1]!, kv[2]!);
  }
  return m;
}

export interface BlockDevice {
  name: string;
  sys: string;
  parent: string;
}

/** Whole disks from /sys/block and their partitions (subdirectories with a `partition` file). */
export function listBlockDevices(root: string): BlockDevice[] {
  const out: BlockDevice[] = [];
  for (const disk of listDir(`${root}/sys/block`)) {
    const sys = `${root}/sys/block/${disk}`;
    out.push({ name: disk, sys, parent: "" });
    for (const part of listDir(sys)) {
      if (readText(`${sys}/${part}/partition`) !== undefined)
        out.push({ name: part, sys: `${sys}/${part}`, parent: disk });
    }
  }
  return out;
}

export function genBlockDevices(ctx: GenContext): Row[] {
  return listBlockDevices(ctx.root).map((d) => {
    const disk = d.parent ? `${ctx.root}/sys/block/${d.parent}` : d.sys;
    const udev = udevProps(ctx.root, attr(`${d.sys}/dev`));
    const blockSize = Number(attr(`${disk}/queue/logical_block_size`)) || 512;
    return {
      name: `/dev/${d.name}`,
      parent: d.parent ? `/dev/${d.parent}` : "",
      vendor: attr(`${disk}/device/vendor`) || (udev.get("ID_VENDOR") ?? ""),
      model: attr(`${disk}/device/model`) || (udev.get("ID_MODEL") ?? ""),
      // sysfs `size` counts 512-byte sectors whatever the device's block size; osquery reports it as is.
      size: Number(attr(`${d.sys}/size`)) || 0,
      block_size: blockSize,
      uuid: udev.get("ID_FS_UUID") ?? "",
      type: udev.get("ID_FS_TYPE") ?? "",
      label: udev.get("ID_FS_LABEL") ?? "",
    };
  });
}

/** dm-crypt targets carry a `CRYPT-<TYPE>-…` uuid (cryptsetup's naming). */
export function cryptType(dmUuid: string): string | undefined {
  const m = /^CRYPT-([A-Za-z0-9]+)-/.exec(dmUuid);
  return m ? m[1]!.toLowerCase() : undefined;
}

export function genDiskEncryption(ctx: GenContext): Row[] {
  return listBlockDevices(ctx.root).map((d) => {
    const type = cryptType(attr(`${d.sys}/dm/uuid`));
    const udev = udevProps(ctx.root, attr(`${d.sys}/dev`));
    return {
      name: `/dev/${d.name}`,
      uuid: udev.get("ID_FS_UUID") ?? "",
      encrypted: type ? 1 : 0,
      type: type ?? "",
      encryption_status: type ? "encrypted" : "not encrypted",
    };
  });
}

export const STORAGE_TABLES: TableDef[] = [
  {
    schema: table(
      "block_devices",
      "Block (buffered access) device file nodes: disks, ramdisks, and DMG containers.",
      [
        ["name", T],
        ["parent", T],
        ["vendor", T],
        ["model", T],
        ["size", B],
        ["block_size", I],
        ["uuid", T],
        ["type", T],
        ["label", T],
      ],
    ),
    gen: genBlockDevices,
  },
  {
    schema: table("disk_encryption", "Disk encryption status and information.", [
      ["name", T],
      ["uuid", T],
      ["encrypted", I],
      ["type", T],
      ["encryption_status", T],
    ]),
    gen: genDiskEncryption,
  },
];
