// DeviceSet's attach when the UIO node is not (yet, or any more) there: retried while the device
// exists, refused with the real cause when it vanished or the budget ran out.
import { afterAll, afterEach, beforeEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CONFIGFS_IO } from "../../src/configfs/io.ts";
import { DataPlanePool } from "../../src/data-plane/pool.ts";
import { DEFAULT_DATA_PLANE_SETTINGS } from "../../src/data-plane/settings.ts";
import { EBUSY, EINVAL, ENOENT, SystemCallError } from "../../src/libc/errno.ts";
import { DeviceSet, isTransientUioError } from "../../src/serve/device-set.ts";
import { HandlerClaims } from "../../src/serve/handler-claims.ts";
import { describeDeviceAsync } from "../../src/serve/discover-async.ts";
import { parseUioName, type SystemRoots } from "../../src/uio/discover.ts";

const silent = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
const pool = new DataPlanePool({ ...DEFAULT_DATA_PLANE_SETTINGS, threads: 1 }, silent);
afterAll(() => pool.stop());

let root: string;
let roots: SystemRoots;
let errors: string[];
let debugs: string[];
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "tcmu-device-set-"));
  roots = { sysfs: join(root, "sys"), configfs: join(root, "config"), dev: join(root, "dev") };
  mkdirSync(roots.dev, { recursive: true });
  errors = [];
  debugs = [];
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const UIO_NAME = "tcm-user/8/d0/appliance/ram";

/** The sysfs and configfs entries of an enabled device whose /dev node is missing. */
function fakeDevice(): void {
  const uioDir = join(roots.sysfs, "class", "uio", "uio3");
  mkdirSync(join(uioDir, "maps", "map0"), { recursive: true });
  writeFileSync(join(uioDir, "name"), `${UIO_NAME}\n`);
  writeFileSync(join(uioDir, "maps", "map0", "size"), "0x4000000\n");
  const dir = join(roots.configfs, "target", "core", "user_8", "d0");
  mkdirSync(join(dir, "attrib"), { recursive: true });
  for (const [key, value] of Object.entries({ hw_block_size: "512", hw_max_sectors: "128", dev_size: "67108864", nl_reply_supported: "1" })) {
    writeFileSync(join(dir, "attrib", key), `${value}\n`);
  }
}

function deviceSet(attachRetryMs: number): DeviceSet {
  return new DeviceSet({
    claims: new HandlerClaims("appliance"),
    allowedRoots: [],
    roots,
    io: CONFIGFS_IO,
    log: { ...silent, error: (message) => void errors.push(message), debug: (message) => void debugs.push(message) },
    ringLog: silent,
    onChange: () => {},
    pool,
    attachRetryMs,
  });
}

test("only open() of the device's own node failing ENOENT/EBUSY/EAGAIN/EINTR is worth retrying", () => {
  expect(isTransientUioError(new SystemCallError("open", "/dev/uio3", EBUSY), "/dev/uio3")).toBe(true);
  expect(isTransientUioError(new SystemCallError("open", "/dev/uio3", ENOENT), "/dev/uio3")).toBe(true);
  expect(isTransientUioError(new SystemCallError("open", "/dev/uio3", EINVAL), "/dev/uio3")).toBe(false);
  // A backstore file that does not exist is not transient: the enable must fail at once.
  expect(isTransientUioError(new SystemCallError("open", "/srv/missing.img", ENOENT), "/dev/uio3")).toBe(false);
  expect(isTransientUioError(new Error("open(/dev/uio3): EBUSY"), "/dev/uio3")).toBe(false);
});

test("a missing node of a device that still exists is retried until the budget runs out, then refused saying so", async () => {
  fakeDevice();
  const info = (await describeDeviceAsync("uio3", parseUioName(UIO_NAME)!, roots, CONFIGFS_IO))!;
  await expect(deviceSet(300).attachOrThrow(info)).rejects.toThrow("ENOENT, still after 300 ms of retries");
  expect(debugs.filter((line) => line.includes("retrying in")).length).toBeGreaterThanOrEqual(3);
  expect(errors.join("\n")).toContain("not served");
});

test("a device that vanished while its node was missing is refused at once as vanished", async () => {
  fakeDevice();
  const info = (await describeDeviceAsync("uio3", parseUioName(UIO_NAME)!, roots, CONFIGFS_IO))!;
  rmSync(join(roots.sysfs, "class", "uio", "uio3"), { recursive: true });
  const started = performance.now();
  await expect(deviceSet(5000).attachOrThrow(info)).rejects.toThrow("uio3 vanished before it could be attached (open(");
  expect(performance.now() - started).toBeLessThan(1000);
});
