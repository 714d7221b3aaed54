import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { discoverDevices, parseUioName, type SystemRoots } from "../../src/uio/discover.ts";

const root = mkdtempSync(join(tmpdir(), "tcmu-discover-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const roots: SystemRoots = { sysfs: join(root, "sys"), configfs: join(root, "config"), dev: join(root, "dev") };

function fakeUio(uio: string, name: string, mapSize: string): void {
  const dir = join(roots.sysfs, "class", "uio", uio);
  mkdirSync(join(dir, "maps", "map0"), { recursive: true });
  writeFileSync(join(dir, "name"), `${name}\n`);
  writeFileSync(join(dir, "maps", "map0", "size"), `${mapSize}\n`);
}

function fakeConfigfs(hba: number, name: string, attributes: Record<string, string>, serial?: string): void {
  const dir = join(roots.configfs, "target", "core", `user_${hba}`, name);
  mkdirSync(join(dir, "attrib"), { recursive: true });
  mkdirSync(join(dir, "wwn"), { recursive: true });
  for (const [key, value] of Object.entries(attributes)) writeFileSync(join(dir, "attrib", key), `${value}\n`);
  if (serial !== undefined) writeFileSync(join(dir, "wwn", "vpd_unit_serial"), `T10 VPD Unit Serial Number: ${serial}\n`);
}

test("parseUioName() splits hba, device, subtype and a config path that contains slashes", () => {
  expect(parseUioName("tcm-user/1/disk0/appliance/file//srv/disk.img;direct")).toEqual({
    hbaId: 1,
    deviceName: "disk0",
    subtype: "appliance",
    configPath: "file//srv/disk.img;direct",
  });
  expect(parseUioName("tcm-user/2/d/appliance")?.configPath).toBe("");
  expect(parseUioName("uio_pci_generic")).toBeUndefined();
  expect(parseUioName("tcm-user/x/disk/appliance/ram")).toBeUndefined();
});

test("discoverDevices() claims only our subtype and reads map size and configfs attributes", () => {
  fakeUio("uio0", "tcm-user/1/other/qcow/x.img", "0x40800000");
  fakeUio("uio1", "tcm-user/1/disk0/appliance/ram", "0x40800000");
  fakeUio("uio10", "tcm-user/3/disk1/appliance/file//srv/a.img", "0x2800000");
  fakeConfigfs(1, "disk0", { hw_block_size: "512", hw_max_sectors: "128", dev_size: "67108864", emulate_write_cache: "0" }, "c0ffee-1");
  fakeConfigfs(3, "disk1", { hw_block_size: "4096", hw_max_sectors: "256", dev_size: "1073741824", emulate_write_cache: "1" });
  const devices = discoverDevices("appliance", roots);
  expect(devices.map((device) => device.uio)).toEqual(["uio1", "uio10"]);
  const [ram, file] = devices;
  expect(ram!.mapSizeBytes).toBe(0x40800000);
  expect(ram!.devicePath).toBe(join(roots.dev, "uio1"));
  expect(ram!.attributes).toEqual({ hwBlockSizeBytes: 512, hwMaxSectors: 128, devSizeBytes: 67108864, emulateWriteCache: false, unitSerial: "c0ffee-1" });
  expect(file!.attributes.hwBlockSizeBytes).toBe(4096);
  expect(file!.attributes.emulateWriteCache).toBe(true);
  expect(file!.configPath).toBe("file//srv/a.img");
  expect(discoverDevices("qcow", roots).map((device) => device.deviceName)).toEqual(["other"]);
});

test("discoverDevices() finds nothing where sysfs has no uio class", () => {
  expect(discoverDevices("appliance", { ...roots, sysfs: join(root, "missing") })).toEqual([]);
});
