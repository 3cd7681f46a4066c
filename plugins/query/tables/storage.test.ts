/** block_devices against lsblk; disk_encryption from a dm-crypt fixture. */
import { afterAll, describe, expect, test } from "bun:test";
import { cryptType, genBlockDevices, genDiskEncryption } from "./storage.ts";
import { ctxFor, fixtureRoot, tool } from "./testutil.ts";

const fx = fixtureRoot({
  "sys/block/sda/dev": "8:0\n",
  "sys/block/sda/size": "2097152\n",
  "sys/block/sda/queue/logical_block_size": "512\n",
  "sys/block/sda/device/vendor": "ATA     \n",
  "sys/block/sda/device/model": "QEMU HARDDISK\n",
  "sys/block/sda/sda1/partition": "1\n",
  "sys/block/sda/sda1/dev": "8:1\n",
  "sys/block/sda/sda1/size": "2095104\n",
  "sys/block/dm-0/dev": "253:0\n",
  "sys/block/dm-0/size": "2000000\n",
  "sys/block/dm-0/dm/uuid": "CRYPT-LUKS2-0123456789abcdef0123456789abcdef-root\n",
  "run/udev/data/b8:1": "E:ID_FS_UUID=0123-ABCD\nE:ID_FS_TYPE=crypto_LUKS\nE:ID_FS_LABEL=secret\n",
});
afterAll(fx.cleanup);

describe("block_devices", () => {
  test("disks and partitions with parent, sizes in 512-byte sectors, udev's blkid fields", () => {
    expect(genBlockDevices(ctxFor(fx.root))).toEqual([
      {
        name: "/dev/dm-0",
        parent: "",
        vendor: "",
        model: "",
        size: 2000000,
        block_size: 512,
        uuid: "",
        type: "",
        label: "",
      },
      {
        name: "/dev/sda",
        parent: "",
        vendor: "ATA",
        model: "QEMU HARDDISK",
        size: 2097152,
        block_size: 512,
        uuid: "",
        type: "",
        label: "",
      },
      {
        name: "/dev/sda1",
        parent: "/dev/sda",
        vendor: "ATA",
        model: "QEMU HARDDISK",
        size: 2095104,
        block_size: 512,
        uuid: "0123-ABCD",
        type: "crypto_LUKS",
        label: "secret",
      },
    ]);
  });

  test("the same devices, parents and byte sizes as lsblk", () => {
    const lsblk = tool(["lsblk", "-b", "-P", "-o", "NAME,SIZE,PKNAME"])
      .trim()
      .split("\n")
      .map((l) => Object.fromEntries([...l.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]])))
      .map((d) => `/dev/${d.NAME} ${d.PKNAME ? `/dev/${d.PKNAME}` : "-"} ${d.SIZE}`);
    const ours = genBlockDevices(ctxFor()).map((r) => `${r.name} ${r.parent || "-"} ${Number(r.size) * 512}`);
    // lsblk hides zero-sized devices by default; so do we in the comparison.
    expect(ours.filter((l) => !l.endsWith(" 0")).sort()).toEqual(
      lsblk.filter((l) => !l.endsWith(" 0")).sort(),
    );
  });
});

describe("disk_encryption", () => {
  test("dm-crypt targets are encrypted with their type; others are not", () => {
    expect(genDiskEncryption(ctxFor(fx.root))).toEqual([
      { name: "/dev/dm-0", uuid: "", encrypted: 1, type: "luks2", encryption_status: "encrypted" },
      { name: "/dev/sda", uuid: "", encrypted: 0, type: "", encryption_status: "not encrypted" },
      { name: "/dev/sda1", uuid: "0123-ABCD", encrypted: 0, type: "", encryption_status: "not encrypted" },
    ]);
    expect(cryptType("LVM-abc")).toBeUndefined();
    expect(cryptType("CRYPT-PLAIN-x")).toBe("plain");
  });
});
