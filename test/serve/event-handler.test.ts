import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BackstoreOpenError } from "../../backstores/types.ts";
import { CONFIGFS_IO } from "../../src/configfs/io.ts";
import type { ReconfigChange, TcmuEvent } from "../../src/netlink/tcmu-genl.ts";
import type { AttachedDevice } from "../../src/serve/attached-device.ts";
import type { DeviceSet } from "../../src/serve/device-set.ts";
import type { OtherDaemon } from "../../src/configfs/other-daemons.ts";
import { EventHandler } from "../../src/serve/event-handler.ts";
import { HandlerClaims, type CompatMode } from "../../src/serve/handler-claims.ts";
import type { SystemRoots, TcmuDeviceInfo } from "../../src/uio/discover.ts";

let root: string;
let roots: SystemRoots;
let replies: [string, number][];
let calls: string[];
let removed: string[];
let attachFailure: Error | undefined;
let resizeFailure: Error | undefined;

const silent = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "tcmu-events-"));
  roots = { sysfs: join(root, "sys"), configfs: join(root, "config"), dev: join(root, "dev") };
  replies = [];
  calls = [];
  otherDaemons = [];
  warnings = [];
  compat = undefined;
  removed = [];
  attachFailure = undefined;
  resizeFailure = undefined;
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** sysfs and configfs entries of a device the kernel is enabling. */
function fakeDevice(uio: string, hba: number, name: string, nlReplySupported = "1"): void {
  mkdirSync(join(roots.sysfs, "class", "uio", uio, "maps", "map0"), { recursive: true });
  writeFileSync(join(roots.sysfs, "class", "uio", uio, "maps", "map0", "size"), "0x4000000\n");
  const dir = join(roots.configfs, "target", "core", `user_${hba}`, name);
  mkdirSync(join(dir, "attrib"), { recursive: true });
  for (const [key, value] of Object.entries({ hw_block_size: "512", hw_max_sectors: "1024", dev_size: "67108864", nl_reply_supported: nlReplySupported })) {
    writeFileSync(join(dir, "attrib", key), `${value}\n`);
  }
}

let otherDaemons: OtherDaemon[];
let compat: CompatMode | undefined;
let warnings: string[];

function handler(served: Map<string, AttachedDevice> = new Map()): EventHandler {
  const devices = {
    options: { claims: new HandlerClaims("appliance", compat), roots, io: CONFIGFS_IO },
    byUio: (uio: string) => served.get(uio),
    replyExpected: (uio: string) => (uio === "uio9" ? false : undefined),
    forgetReplies: (uio: string) => void calls.push(`forget ${uio}`),
    attachOrThrow: async (info: TcmuDeviceInfo) => {
      calls.push(`attach ${info.uio} ${info.deviceName} ${info.configPath} ${info.attributes.devSizeBytes}`);
      if (attachFailure !== undefined) throw attachFailure;
    },
    detach: async (device: AttachedDevice, reason: string, options: { destroy?: boolean }) => {
      calls.push(`detach ${device.info.deviceName} ${reason} destroy=${options.destroy}`);
    },
  } as unknown as DeviceSet;
  return new EventHandler({
    devices,
    replier: { reply: (event, status) => (replies.push([event.kind, status]), true) },
    log: { ...silent, warn: (message: string) => void warnings.push(message) },
    onRemoved: (hbaId, name) => removed.push(`${hbaId}/${name}`),
    requestScan: () => calls.push("scan"),
    otherDaemons: () => otherDaemons,
  });
}

function servedDevice(name: string): AttachedDevice {
  return {
    info: { deviceName: name },
    detaching: false,
    sizeBytes: 64 * 1024 * 1024,
    resize: async (size: number) => {
      calls.push(`resize ${size}`);
      if (resizeFailure !== undefined) throw resizeFailure;
    },
    reopen: async (path: string, size: number) => void calls.push(`reopen ${path} ${size}`),
    setWriteCache: async (enabled: boolean) => void calls.push(`wce ${enabled}`),
    backstoreDescription: "x",
  } as unknown as AttachedDevice;
}

const event = (kind: "added" | "removed", uioName: string, minor = 3, deviceId = 7): TcmuEvent => ({ kind, uioName, minor, deviceId });
const reconfig = (change: ReconfigChange, uioName = "tcm-user/8/d0/appliance/ram"): TcmuEvent => ({ kind: "reconfig", uioName, minor: 3, deviceId: 7, change });

test("ADDED for another handler's device is answered 0 without attaching", async () => {
  fakeDevice("uio3", 1, "q0");
  await handler().handle(event("added", "tcm-user/1/q0/qcow/x.img"));
  expect(replies).toEqual([["added", 0]]);
  expect(calls).toEqual([]);
});

test("with tcmu-runner running, another handler's events are left to it: no reply that could beat its verdict", async () => {
  fakeDevice("uio3", 1, "q0");
  otherDaemons = [{ name: "tcmu-runner", pid: 812 }];
  await handler().handle(event("added", "tcm-user/1/q0/qcow/x.img"));
  expect(replies).toEqual([]);
});

test("our device gone before it could be attached, with tcmu-runner running: the refusal names it and the fix", async () => {
  otherDaemons = [{ name: "tcmu-runner", pid: 812 }];
  await handler().handle(event("added", "tcm-user/8/d0/appliance/ram"));
  expect(replies).toEqual([["added", -5]]);
  expect(warnings.join("\n")).toContain("vanished before it could be attached (tcmu-runner (pid 812) also answers TCMU netlink events");
  expect(warnings.join("\n")).toContain("nl_reply_supported=-1");
});

test("with --compat tcmu-runner, a targetcli user:file device is attached from its tcmu-runner config string", async () => {
  fakeDevice("uio3", 1, "f0");
  compat = "tcmu-runner";
  await handler().handle(event("added", "tcm-user/1/f0/file//srv/f0.img"));
  expect(calls).toEqual(["attach uio3 f0 /srv/f0.img 67108864"]);
  expect(replies).toEqual([["added", 0]]);
});

test("without --compat, a user:file device is another handler's", async () => {
  fakeDevice("uio3", 1, "f0");
  await handler().handle(event("added", "tcm-user/1/f0/file//srv/f0.img"));
  expect(calls).toEqual([]);
  expect(replies).toEqual([["added", 0]]);
});

test("ADDED for our device attaches it from sysfs and configfs, then answers 0", async () => {
  fakeDevice("uio3", 8, "d0");
  await handler().handle(event("added", "tcm-user/8/d0/appliance/ram"));
  expect(calls).toEqual(["attach uio3 d0 ram 67108864"]);
  expect(replies).toEqual([["added", 0]]);
});

test("a device we cannot serve fails its enable with the errno (EINVAL for a bad backstore)", async () => {
  fakeDevice("uio3", 8, "d0");
  attachFailure = new BackstoreOpenError("/srv/missing.img does not exist");
  await handler().handle(event("added", "tcm-user/8/d0/appliance/file//srv/missing.img"));
  expect(replies).toEqual([["added", -22]]);
});

test("no reply to a RECONFIG when the device was attached with nl_reply_supported 0", async () => {
  fakeDevice("uio9", 8, "d0", "0");
  const device = servedDevice("d0");
  const events = handler(new Map([["uio9", device]]));
  await events.handle({ ...reconfig({ kind: "write_cache", enabled: true }), minor: 9 });
  expect(calls).toEqual(["wce true"]);
  expect(replies).toEqual([]);
});

test("REMOVED of a device attached with nl_reply_supported -1, already released when its UIO went, gets no reply", async () => {
  await handler().handle(event("removed", "tcm-user/8/d0/appliance/ram", 9));
  expect(replies).toEqual([]);
  expect(calls).toEqual(["forget uio9"]);
  expect(removed).toEqual(["8/d0"]);
});

test("REMOVED detaches and destroys our device, forgets it, and replies though configfs is gone", async () => {
  fakeDevice("uio3", 8, "d0");
  const events = handler(new Map([["uio3", servedDevice("d0")]]));
  await events.handle(event("added", "tcm-user/8/d0/appliance/ram"));
  rmSync(join(roots.configfs, "target", "core", "user_8", "d0"), { recursive: true });
  await events.handle(event("removed", "tcm-user/8/d0/appliance/ram"));
  expect(calls).toContain("detach d0 removed destroy=true");
  expect(removed).toEqual(["8/d0"]);
  expect(replies).toEqual([
    ["added", 0],
    ["removed", 0],
  ]);
});

test("RECONFIG dev_size resizes; a refused resize is a veto (-EINVAL) and counted", async () => {
  fakeDevice("uio3", 8, "d0");
  const events = handler(new Map([["uio3", servedDevice("d0")]]));
  await events.handle(reconfig({ kind: "dev_size", sizeBytes: 128 * 1024 * 1024 }));
  resizeFailure = new BackstoreOpenError("dev_size 268435456 does not fit the qcow2 image's virtual size 67108864");
  await events.handle(reconfig({ kind: "dev_size", sizeBytes: 256 * 1024 * 1024 }));
  expect(calls).toEqual(["resize 134217728", "resize 268435456"]);
  expect(replies).toEqual([
    ["reconfig", 0],
    ["reconfig", -22],
  ]);
  expect(events.counters.vetoed).toBe(1);
});

test("RECONFIG dev_config reopens on the new path; another handler's subtype or a bad path is vetoed", async () => {
  fakeDevice("uio3", 8, "d0");
  const events = handler(new Map([["uio3", servedDevice("d0")]]));
  await events.handle(reconfig({ kind: "dev_config", devConfig: "appliance/file//srv/b.img" }));
  await events.handle(reconfig({ kind: "dev_config", devConfig: "qcow/srv/b.img" }));
  await events.handle(reconfig({ kind: "dev_config", devConfig: "appliance/tape" }));
  expect(calls).toEqual([`reopen file//srv/b.img ${64 * 1024 * 1024}`]);
  expect(replies.map(([, status]) => status)).toEqual([0, -22, -22]);
});

test("RECONFIG emulate_write_cache switches WCE", async () => {
  fakeDevice("uio3", 8, "d0");
  await handler(new Map([["uio3", servedDevice("d0")]])).handle(reconfig({ kind: "write_cache", enabled: true }));
  expect(calls).toEqual(["wce true"]);
  expect(replies).toEqual([["reconfig", 0]]);
});

test("RECONFIG of our device that is not served is accepted; a dev_config change triggers a scan", async () => {
  fakeDevice("uio3", 8, "d0");
  const events = handler();
  await events.handle(reconfig({ kind: "dev_size", sizeBytes: 1024 }));
  await events.handle(reconfig({ kind: "dev_config", devConfig: "appliance/ram" }));
  expect(replies.map(([, status]) => status)).toEqual([0, 0]);
  expect(calls).toEqual(["scan"]);
});

test("events of one device are handled one after another", async () => {
  fakeDevice("uio3", 8, "d0");
  const order: string[] = [];
  let release: () => void = () => {};
  const slow = new Promise<void>((resolve) => (release = resolve));
  const device = {
    ...servedDevice("d0"),
    resize: async () => {
      order.push("resize start");
      await slow;
      order.push("resize end");
    },
    setWriteCache: async () => void order.push("wce"),
  } as unknown as AttachedDevice;
  const events = handler(new Map([["uio3", device]]));
  const first = events.handle(reconfig({ kind: "dev_size", sizeBytes: 1024 }));
  const second = events.handle(reconfig({ kind: "write_cache", enabled: false }));
  await Bun.sleep(5);
  expect(order).toEqual(["resize start"]);
  release();
  await Promise.all([first, second]);
  expect(order).toEqual(["resize start", "resize end", "wce"]);
});
