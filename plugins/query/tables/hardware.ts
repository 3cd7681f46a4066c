/**
 * Hardware inventory tables: PCI and USB devices (sysfs, named through the
 * pci.ids/usb.ids databases when installed, as osquery names them through
 * udev's hwdb). A VM or a container without the sysfs node gets no rows.
 * CPU and firmware tables are in firmware.ts.
 */
import type { GenContext, Row, TableDef } from "./context.ts";
import { attr, listDir, readLink, readText } from "./read.ts";
import { I, T, table } from "./schema.ts";

const IDS_DIRS = ["/usr/share/hwdata", "/usr/share/misc", "/usr/share"];

interface IdsDb {
  vendors: Map<string, string>;
  /** `vendor:device` and `vendor:device:subvendor:subdevice` */
  devices: Map<string, string>;
  /** `class` and `class:subclass` (PCI) */
  classes: Map<string, string>;
}

/** pci.ids / usb.ids: vendor lines, tab-indented devices, two-tab subsystems, `C xx` class blocks. */
export function parseIds(text: string): IdsDb {
  const db: IdsDb = { vendors: new Map(), devices: new Map(), classes: new Map() };
  let vendor = "";
  let device = "";
  let cls = "";
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    let m = /^C ([0-9a-f]{2})\s+(.*)$/.exec(line);
    if (m) {
      [cls, vendor] = [m[1]!, ""];
      db.classes.set(cls, m[2]!);
      continue;
    }
    m = /^([0-9a-f]{4})\s+(.*)$/.exec(line);
    if (m) {
      [vendor, cls] = [m[1]!, ""];
      db.vendors.set(vendor, m[2]!);
      continue;
    }
    m = /^\t([0-9a-f]{2,4})\s+(.*)$/.exec(line);
    if (m) {
      if (cls) db.classes.set(`${cls}:${m[1]}`, m[2]!);
      else if (vendor) {
        device = m[1]!;
        db.devices.set(`${vendor}:${device}`, m[2]!);
      }
      continue;
    }
    m = /^\t\t([0-9a-f]{4}) ([0-9a-f]{4})\s+(.*)$/.exec(line);
    if (m && vendor && !cls) db.devices.set(`${vendor}:${device}:${m[1]}:${m[2]}`, m[3]!);
  }
  return db;
}

function idsDb(root: string, name: string): IdsDb | undefined {
  for (const d of IDS_DIRS) {
    const text = readText(`${root}${d}/${name}`);
    if (text !== undefined) return parseIds(text);
  }
  return undefined;
}

const hex4 = (s: string) => s.replace(/^0x/, "").toLowerCase().padStart(4, "0");

export function genPciDevices(ctx: GenContext): Row[] {
  const base = `${ctx.root}/sys/bus/pci/devices`;
  const slots = listDir(base);
  const db = slots.length ? idsDb(ctx.root, "pci.ids") : undefined;
  return slots.map((slot) => {
    const d = `${base}/${slot}`;
    const vendorId = hex4(attr(`${d}/vendor`));
    const modelId = hex4(attr(`${d}/device`));
    const subVendorId = hex4(attr(`${d}/subsystem_vendor`));
    const subModelId = hex4(attr(`${d}/subsystem_device`));
    const cls = attr(`${d}/class`).replace(/^0x/, "").padStart(6, "0");
    const [classId, subclassId] = [cls.slice(0, 2), cls.slice(2, 4)];
    return {
      pci_slot: slot,
      pci_class: db?.classes.get(classId) ?? "",
      driver: readLink(`${d}/driver`)?.split("/").pop() ?? "",
      vendor: db?.vendors.get(vendorId) ?? "",
      vendor_id: `0x${vendorId}`,
      model: db?.devices.get(`${vendorId}:${modelId}`) ?? "",
      model_id: `0x${modelId}`,
      pci_class_id: `0x${classId}`,
      pci_subclass_id: `0x${subclassId}`,
      pci_subclass: db?.classes.get(`${classId}:${subclassId}`) ?? "",
      subsystem_vendor_id: `0x${subVendorId}`,
      subsystem_vendor: db?.vendors.get(subVendorId) ?? "",
      subsystem_model_id: `0x${subModelId}`,
      subsystem_model: db?.devices.get(`${vendorId}:${modelId}:${subVendorId}:${subModelId}`) ?? "",
    };
  });
}

export function genUsbDevices(ctx: GenContext): Row[] {
  const base = `${ctx.root}/sys/bus/usb/devices`;
  const devices = listDir(base).filter((n) => readText(`${base}/${n}/idVendor`) !== undefined);
  const db = devices.length ? idsDb(ctx.root, "usb.ids") : undefined;
  return devices.map((n) => {
    const d = `${base}/${n}`;
    const vendorId = hex4(attr(`${d}/idVendor`));
    const modelId = hex4(attr(`${d}/idProduct`));
    const removable = attr(`${d}/removable`);
    return {
      usb_address: Number(attr(`${d}/busnum`)) || 0,
      usb_port: Number(attr(`${d}/devnum`)) || 0,
      vendor: attr(`${d}/manufacturer`) || (db?.vendors.get(vendorId) ?? ""),
      vendor_id: vendorId,
      version: attr(`${d}/bcdDevice`),
      model: attr(`${d}/product`) || (db?.devices.get(`${vendorId}:${modelId}`) ?? ""),
      model_id: modelId,
      serial: attr(`${d}/serial`),
      class: attr(`${d}/bDeviceClass`),
      subclass: attr(`${d}/bDeviceSubClass`),
      protocol: attr(`${d}/bDeviceProtocol`),
      removable: removable === "removable" ? 1 : removable === "fixed" ? 0 : -1,
    };
  });
}

const cols = (...names: string[]): [string, "TEXT"][] => names.map((n) => [n, T]);

export const HARDWARE_TABLES: TableDef[] = [
  {
    schema: table(
      "pci_devices",
      "PCI devices active on the host system.",
      cols(
        "pci_slot",
        "pci_class",
        "driver",
        "vendor",
        "vendor_id",
        "model",
        "model_id",
        "pci_class_id",
        "pci_subclass_id",
        "pci_subclass",
        "subsystem_vendor_id",
        "subsystem_vendor",
        "subsystem_model_id",
        "subsystem_model",
      ),
    ),
    gen: genPciDevices,
  },
  {
    schema: table("usb_devices", "USB devices that are actively plugged into the host system.", [
      ["usb_address", I],
      ["usb_port", I],
      ...cols(
        "vendor",
        "vendor_id",
        "version",
        "model",
        "model_id",
        "serial",
        "class",
        "subclass",
        "protocol",
      ),
      ["removable", I],
    ]),
    gen: genUsbDevices,
  },
];
