/** cpuid against lscpu, acpi_tables against md5sum, pci/usb against lspci/lsusb and fixtures, smbios from built structures. */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { genAcpiTables, genCpuid, parseSmbios } from "./firmware.ts";
import { genPciDevices, genUsbDevices, parseIds } from "./hardware.ts";
import { ctxFor, fixtureRoot, has, tool } from "./testutil.ts";

const PCI_IDS =
  "# comment\n8086  Intel Corporation\n\t100e  82540EM Gigabit Ethernet Controller\n\t\t8086 001e  PRO/1000 MT Desktop Adapter\nC 02  Network controller\n\t00  Ethernet controller\n";
const fx = fixtureRoot({
  "usr/share/misc/pci.ids": PCI_IDS,
  "sys/bus/pci/devices/0000:00:03.0/vendor": "0x8086\n",
  "sys/bus/pci/devices/0000:00:03.0/device": "0x100e\n",
  "sys/bus/pci/devices/0000:00:03.0/subsystem_vendor": "0x8086\n",
  "sys/bus/pci/devices/0000:00:03.0/subsystem_device": "0x001e\n",
  "sys/bus/pci/devices/0000:00:03.0/class": "0x020000\n",
  "sys/bus/usb/devices/1-1/idVendor": "0781\n",
  "sys/bus/usb/devices/1-1/idProduct": "5567\n",
  "sys/bus/usb/devices/1-1/manufacturer": "SanDisk\n",
  "sys/bus/usb/devices/1-1/product": "Cruzer Blade\n",
  "sys/bus/usb/devices/1-1/serial": "4C530001\n",
  "sys/bus/usb/devices/1-1/busnum": "1\n",
  "sys/bus/usb/devices/1-1/devnum": "3\n",
  "sys/bus/usb/devices/1-1/bcdDevice": "0100\n",
  "sys/bus/usb/devices/1-1/bDeviceClass": "00\n",
  "sys/bus/usb/devices/1-1/removable": "removable\n",
  "sys/bus/usb/devices/1-1:1.0/bInterfaceClass": "08\n",
});
afterAll(fx.cleanup);

describe("pci_devices and usb_devices", () => {
  test("pci.ids names vendor, model, class and subsystem", () => {
    expect(genPciDevices(ctxFor(fx.root))).toEqual([
      {
        pci_slot: "0000:00:03.0",
        pci_class: "Network controller",
        driver: "",
        vendor: "Intel Corporation",
        vendor_id: "0x8086",
        model: "82540EM Gigabit Ethernet Controller",
        model_id: "0x100e",
        pci_class_id: "0x02",
        pci_subclass_id: "0x00",
        pci_subclass: "Ethernet controller",
        subsystem_vendor_id: "0x8086",
        subsystem_vendor: "Intel Corporation",
        subsystem_model_id: "0x001e",
        subsystem_model: "PRO/1000 MT Desktop Adapter",
      },
    ]);
    expect(parseIds(PCI_IDS).classes.get("02:00")).toBe("Ethernet controller");
  });

  test("usb devices (not interfaces) from sysfs", () => {
    expect(genUsbDevices(ctxFor(fx.root))).toEqual([
      {
        usb_address: 1,
        usb_port: 3,
        vendor: "SanDisk",
        vendor_id: "0781",
        version: "0100",
        model: "Cruzer Blade",
        model_id: "5567",
        serial: "4C530001",
        class: "00",
        subclass: "",
        protocol: "",
        removable: 1,
      },
    ]);
  });

  test("the same PCI slots and ids as lspci -n, the same USB ids as lsusb (none here is fine)", () => {
    if (has("lspci")) {
      const lspci = tool(["lspci", "-n", "-D"])
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => {
          const [slot, , ids] = l.split(/\s+/);
          return `${slot} ${ids}`;
        });
      expect(
        genPciDevices(ctxFor())
          .map((r) => `${r.pci_slot} ${String(r.vendor_id).slice(2)}:${String(r.model_id).slice(2)}`)
          .sort(),
      ).toEqual(lspci.sort());
    }
    if (has("lsusb") && existsSync("/sys/bus/usb/devices")) {
      const lsusb = tool(["lsusb"])
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => /ID (\S+)/.exec(l)?.[1] ?? l);
      expect(
        genUsbDevices(ctxFor())
          .map((r) => `${r.vendor_id}:${r.model_id}`)
          .sort(),
      ).toEqual(lsusb.sort());
    } else expect(genUsbDevices(ctxFor())).toEqual([]);
  });
});

describe("cpuid", () => {
  test("feature bits agree with lscpu's flags; vendor and brand rows", () => {
    const rows = genCpuid(ctxFor());
    if (!/^flags\s*:/m.test(tool(["cat", "/proc/cpuinfo"]))) {
      expect(rows).toEqual([]);
      return;
    }
    const lscpu = tool(["lscpu"]);
    const flags = new Set((/^Flags:\s*(.*)$/m.exec(lscpu)?.[1] ?? "").split(/\s+/));
    const vendor = /^Vendor ID:\s*(.*)$/m.exec(lscpu)?.[1]?.trim();
    expect(rows.find((r) => r.feature === "vendor")?.value).toBe(vendor!);
    for (const r of rows.filter((r) => r.input_eax === "1" || r.input_eax === "7")) {
      const flag = r.feature === "sse3" ? "pni" : String(r.feature);
      expect(`${flag}=${r.value}`).toBe(`${flag}=${flags.has(flag) ? "1" : "0"}`);
    }
    expect(rows.find((r) => r.feature === "sse2")).toMatchObject({
      output_register: "edx",
      output_bit: 26,
      input_eax: "1",
    });
  });
});

describe("firmware tables", () => {
  test("smbios structures: type, handle, sizes and md5 of each", () => {
    const s0 = Buffer.concat([Buffer.from([0, 4, 0x00, 0x00]), Buffer.from("Vendor\0\0")]);
    const s1 = Buffer.concat([Buffer.from([1, 5, 0x01, 0x00, 0x01]), Buffer.from("\0\0")]);
    const end = Buffer.from([127, 4, 0xff, 0xfe, 0, 0]);
    const rows = parseSmbios(Buffer.concat([s0, s1, end]));
    expect(rows.map((r) => [r.number, r.type, r.description, r.handle, r.header_size, r.size])).toEqual([
      [0, 0, "BIOS Information", 0, 4, 12],
      [1, 1, "System Information", 1, 5, 7],
      [2, 127, "End-of-Table", 0xfeff, 4, 6],
    ]);
    expect(rows[0]!.md5).toBe(createHash("md5").update(s0).digest("hex"));
  });

  test("acpi_tables hashes match md5sum", () => {
    const rows = genAcpiTables(ctxFor());
    for (const r of rows) {
      const sum = tool(["md5sum", `/sys/firmware/acpi/tables/${r.name}`]).split(" ")[0];
      expect(`${r.name} ${r.md5}`).toBe(`${r.name} ${sum}`);
    }
    if (existsSync("/sys/firmware/acpi/tables/DSDT")) expect(rows.map((r) => r.name)).toContain("DSDT");
  });
});
