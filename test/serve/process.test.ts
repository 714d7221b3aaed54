import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderServiceUnit } from "../../src/cli/service-unit.ts";
import { CONFIGFS_IO } from "../../src/configfs/io.ts";
import * as libc from "../../src/libc/libc.ts";
import * as net from "../../src/libc/net.ts";
import { describeDeviceAsync, discoverDevicesAsync } from "../../src/serve/discover-async.ts";
import { acquireInstanceLock, instanceHolderPid, InstanceLockedError } from "../../src/serve/instance-lock.ts";
import { findPendingAdded } from "../../src/serve/pending-added.ts";
import { sdNotify } from "../../src/serve/sd-notify.ts";
import type { SystemRoots } from "../../src/uio/discover.ts";

const root = mkdtempSync(join(tmpdir(), "tcmu-serve-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

test("a second serve is refused by the instance lock, naming the holder's pid", () => {
  const path = join(root, "run", "serve.lock");
  const lock = acquireInstanceLock(path);
  expect(readFileSync(path, "utf8")).toBe(`${process.pid}\n`);
  expect(instanceHolderPid(path)).toBe(process.pid);
  // flock belongs to the open file: a second open in this very process conflicts like a second serve.
  expect(() => acquireInstanceLock(path)).toThrow(InstanceLockedError);
  expect(() => acquireInstanceLock(path)).toThrow(`(pid ${process.pid})`);
  lock.release();
  expect(instanceHolderPid(path)).toBeUndefined();
  acquireInstanceLock(path).release();
});

test("sdNotify() sends READY=1 to $NOTIFY_SOCKET as one datagram, and is a no-op without it", () => {
  const path = join(root, "notify.sock");
  const fd = net.socket(net.AF_UNIX, net.SOCK_DGRAM, 0);
  try {
    const { address, lengthBytes } = net.unixAddress(path);
    expect(lengthBytes).toBe(2 + path.length + 1);
    net.bind(fd, address.subarray(0, lengthBytes));
    expect(sdNotify("READY=1\nSTATUS=serving 2 device(s)", path)).toBe(true);
    const buffer = new Uint8Array(256);
    const length = net.recvRaw(fd, buffer, net.MSG_DONTWAIT);
    expect(new TextDecoder().decode(buffer.subarray(0, length))).toBe("READY=1\nSTATUS=serving 2 device(s)");
    expect(sdNotify("READY=1", "")).toBe(false);
  } finally {
    libc.close(fd);
  }
});

test("unixAddress() maps systemd's '@' to the abstract namespace", () => {
  const { address, lengthBytes } = net.unixAddress("@tcmu/notify");
  expect(address[2]).toBe(0);
  expect(new TextDecoder().decode(address.subarray(3, lengthBytes))).toBe("tcmu/notify");
  expect(lengthBytes).toBe(2 + "@tcmu/notify".length);
});

test("the shipped unit file is the one install-service writes", () => {
  const shipped = readFileSync(join(import.meta.dir, "..", "..", "scripts", "tcmu-appliance.service"), "utf8");
  expect(shipped).toBe(renderServiceUnit());
  expect(shipped).toContain("Type=notify");
  expect(shipped).toContain("Restart=always");
  expect(renderServiceUnit("/opt/bin/tcmu-appliance")).toContain("ExecStart=/opt/bin/tcmu-appliance serve");
});

/** A fake sysfs + configfs: UIO devices and their configfs directories. */
function fakeTree(name: string): SystemRoots {
  const base = join(root, name);
  const roots = { sysfs: join(base, "sys"), configfs: join(base, "config"), dev: join(base, "dev") };
  const uio = (index: number, uioName: string) => {
    const dir = join(roots.sysfs, "class", "uio", `uio${index}`);
    mkdirSync(join(dir, "maps", "map0"), { recursive: true });
    writeFileSync(join(dir, "name"), `${uioName}\n`);
    writeFileSync(join(dir, "maps", "map0", "size"), "0x40800000\n");
  };
  const device = (hba: number, device: string, enable: string, index: number) => {
    const dir = join(roots.configfs, "target", "core", `user_${hba}`, device);
    mkdirSync(join(dir, "attrib"), { recursive: true });
    mkdirSync(join(dir, "statistics", "scsi_dev"), { recursive: true });
    writeFileSync(join(dir, "enable"), `${enable}\n`);
    writeFileSync(join(dir, "statistics", "scsi_dev", "indx"), `${index}\n`);
    writeFileSync(join(dir, "attrib", "dev_size"), "1073741824\n");
    writeFileSync(join(dir, "attrib", "hw_block_size"), "4096\n");
  };
  uio(0, "tcm-user/1/served/appliance/ram");
  device(1, "served", "1", 3);
  uio(1, "tcm-user/1/waiting/appliance/file//srv/a.img");
  device(1, "waiting", "0", 4);
  uio(2, "tcm-user/2/foreign/qcow/x.qcow2");
  device(2, "foreign", "0", 5);
  uio(3, "tcm-user/2/bare");
  device(2, "bare", "0", 6);
  uio(4, "uio_pci_generic");
  return roots;
}

test("findPendingAdded() finds every TCMU device whose enable waits, ours or not, dev_config or not", async () => {
  const pending = await findPendingAdded(fakeTree("pending"), CONFIGFS_IO);
  expect(pending).toEqual([
    { uio: "uio1", hbaId: 1, deviceName: "waiting", devConfig: "appliance/file//srv/a.img", deviceId: 4 },
    { uio: "uio2", hbaId: 2, deviceName: "foreign", devConfig: "qcow/x.qcow2", deviceId: 5 },
    { uio: "uio3", hbaId: 2, deviceName: "bare", devConfig: "", deviceId: 6 },
  ]);
});

test("findPendingAdded() reads a device's enable until it saw 1, and again for a device made anew under the same name and uio", async () => {
  const roots = fakeTree("enabled-seen");
  const reads: string[] = [];
  const counting = Object.create(CONFIGFS_IO) as typeof CONFIGFS_IO;
  counting.readAttribute = (path: string) => {
    reads.push(path.slice(roots.configfs.length));
    return CONFIGFS_IO.readAttribute(path);
  };
  const enabledSeen = new Set<string>();
  await findPendingAdded(roots, counting, enabledSeen);
  expect(reads.filter((path) => path.endsWith("/served/enable"))).toHaveLength(1);
  reads.length = 0;
  // The next scans read only the waiting devices: an enable never goes back to 0.
  const pending = await findPendingAdded(roots, counting, enabledSeen);
  expect(pending.map((device) => device.deviceName)).toEqual(["waiting", "foreign", "bare"]);
  expect(reads.some((path) => path.includes("/served/"))).toBe(false);
  // Removed and made again (a new sysfs node, which kernfs numbers anew), this time waiting for
  // its reply. The old directory is kept aside so this filesystem cannot reuse its inode.
  const uioDir = join(roots.sysfs, "class", "uio", "uio0");
  renameSync(uioDir, join(roots.sysfs, "removed-uio0"));
  mkdirSync(join(uioDir, "maps", "map0"), { recursive: true });
  writeFileSync(join(uioDir, "name"), "tcm-user/1/served/appliance/ram\n");
  writeFileSync(join(roots.configfs, "target", "core", "user_1", "served", "enable"), "0\n");
  const again = await findPendingAdded(roots, counting, enabledSeen);
  expect(again.map((device) => device.deviceName)).toEqual(["served", "waiting", "foreign", "bare"]);
});

test("discoverDevicesAsync() describes only claimed subtypes' devices the caller still wants", async () => {
  const roots = fakeTree("discover");
  const found = await discoverDevicesAsync((subtype) => subtype === "appliance", roots, CONFIGFS_IO, (uio) => uio !== "uio0");
  expect(found.map((device) => [device.uio, device.deviceName, device.configPath])).toEqual([["uio1", "waiting", "file//srv/a.img"]]);
  expect(found[0]!.attributes).toMatchObject({ hwBlockSizeBytes: 4096, devSizeBytes: 1073741824, hwMaxSectors: 128 });
  expect(found[0]!.mapSizeBytes).toBe(0x40800000);
  rmSync(join(roots.configfs, "target", "core", "user_1", "waiting"), { recursive: true });
  const gone = await describeDeviceAsync("uio1", { hbaId: 1, deviceName: "waiting", subtype: "appliance", configPath: "" }, roots, CONFIGFS_IO);
  expect(gone).toBeUndefined();
});

test("a device whose attributes cannot be read is named and passed over by a scan, not described with defaults", async () => {
  const roots = fakeTree("unreadable");
  const devSize = join(roots.configfs, "target", "core", "user_1", "waiting", "attrib", "dev_size");
  rmSync(devSize);
  mkdirSync(devSize); // reading it fails with EISDIR: neither a value nor "gone"
  const unreadable: string[] = [];
  const found = await discoverDevicesAsync((subtype) => subtype === "appliance", roots, CONFIGFS_IO, (uio) => uio !== "uio0", (uio, error) =>
    unreadable.push(`${uio} ${String(error)}`),
  );
  expect(found).toEqual([]);
  expect(unreadable).toHaveLength(1);
  expect(unreadable[0]).toContain("uio1");
  expect(unreadable[0]).toContain("dev_size");
  expect(unreadable[0]).toContain("EISDIR");
});
