import { describe, expect, test } from "bun:test";
import { DevConfigError, parseDevConfig, type DevConfig } from "../../src/config/dev-config.ts";
import { formatSizeBytes, parseSizeBytes } from "../../src/config/size.ts";

const GOOD: [string, DevConfig][] = [
  ["ram", { kind: "ram" }],
  ["ram/scratch", { kind: "ram", label: "scratch" }],
  ["ram/db-1.tmp;max=2G", { kind: "ram", label: "db-1.tmp", maxBytes: 2 * 1024 ** 3 }],
  ["ram;max=512MiB", { kind: "ram", maxBytes: 512 * 1024 ** 2 }],
  ["ram;max=1048576", { kind: "ram", maxBytes: 1048576 }],
  ["file//srv/disk1.img", { kind: "file", path: "/srv/disk1.img", readOnly: false, direct: false, sync: false }],
  ["file//srv/disk1.img;direct", { kind: "file", path: "/srv/disk1.img", readOnly: false, direct: true, sync: false }],
  ["file//dev/sdb;ro;sync", { kind: "file", path: "/dev/sdb", readOnly: true, direct: false, sync: true }],
  ["file///srv//images/a.img", { kind: "file", path: "/srv/images/a.img", readOnly: false, direct: false, sync: false }],
  ["qcow2//srv/base.qcow2", { kind: "qcow2", path: "/srv/base.qcow2" }],
  ["qcow2//srv/base.qcow2;snapshot=before-upgrade", { kind: "qcow2", path: "/srv/base.qcow2", snapshot: "before-upgrade" }],
  ["qcow2//srv/base.qcow2;ro", { kind: "qcow2", path: "/srv/base.qcow2" }],
  ["/srv/disk2.img", { kind: "detect", path: "/srv/disk2.img", readOnly: false, direct: false, sync: false }],
  ["/srv/vm.qcow2;snapshot=1;ro", { kind: "detect", path: "/srv/vm.qcow2", readOnly: true, direct: false, sync: false, snapshot: "1" }],
];

describe("parseDevConfig() accepts", () => {
  for (const [text, expected] of GOOD) {
    test(`"${text}"`, () => {
      expect(parseDevConfig(text)).toEqual(expected);
    });
  }
});

/** [dev_config, the part the message must name, a phrase of the problem]. */
const BAD: [string, string, string][] = [
  ["", "backstore", "expected ram[/label]"],
  ["disk//srv/a.img", 'backstore "disk"', "unknown"],
  ["ramdisk", 'backstore "ramdisk"', "unknown"],
  ["ram/", 'label ""', "1 to 64 letters"],
  ["ram/a/b", 'label "a/b"', "1 to 64 letters"],
  ["ram/" + "x".repeat(65), "label", "1 to 64"],
  ["ram;max=lots", 'option "max=lots"', '"lots" is not a size'],
  ["ram;max=0", 'option "max=0"', "is not a size"],
  ["ram;max", 'option "max"', "needs a size"],
  ["ram;max=99999999P", 'option "max=99999999P"', "is not a size"],
  ["ram;ro", 'option "ro"', "unknown for ram (options: max)"],
  ["file/", "file path", "missing"],
  ["file/srv/disk.img", 'file path "srv/disk.img"', "must be absolute (write file//srv/disk.img)"],
  ["file//srv/../etc/shadow", 'file path "/srv/../etc/shadow"', "'..'"],
  ["file//srv/./a.img", 'file path "/srv/./a.img"', "'.'"],
  ["file//srv/images/", 'file path "/srv/images/"', "directory"],
  ["file//srv/a.img;ro=1", 'option "ro=1"', "is a flag and takes no value (write ;ro)"],
  ["file//srv/a.img;max=1G", 'option "max"', "unknown for file (options: ro, direct, sync)"],
  ["file//srv/a.img;snapshot=x", 'option "snapshot"', "unknown for file"],
  ["file//srv/a.img;ro;ro", 'option "ro"', "given twice"],
  ["file//srv/a.img;;ro", "options", "empty option"],
  ["file//srv/a.img;", "options", "trailing"],
  ["file//srv/a.img;=x", 'option "=x"', "no name"],
  ["qcow2/", "qcow2 path", "missing"],
  ["qcow2/base.qcow2", 'qcow2 path "base.qcow2"', "must be absolute"],
  ["qcow2//srv/b.qcow2;snapshot", 'option "snapshot"', "needs a snapshot name"],
  ["qcow2//srv/b.qcow2;snapshot=", 'option "snapshot="', "needs a snapshot name"],
  ["qcow2//srv/b.qcow2;direct", 'option "direct"', "unknown for qcow2 (options: snapshot, ro)"],
  ["/srv/../a.img", 'image path "/srv/../a.img"', "'..'"],
  ["/srv/a.img;max=1G", 'option "max"', "unknown for an image"],
];

describe("parseDevConfig() refuses, naming the part", () => {
  for (const [text, part, problem] of BAD) {
    test(`"${text}" (${part})`, () => {
      let caught: unknown;
      try {
        parseDevConfig(text);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(DevConfigError);
      const error = caught as DevConfigError;
      expect(error.code).toBe("E_CONFIG_INVALID");
      expect(error.part.startsWith(part)).toBe(true);
      expect(error.message).toStartWith(`dev_config "${text}": ${part}`);
      expect(error.message).toContain(problem);
    });
  }
});

test("parseSizeBytes() reads bytes and binary suffixes, and refuses the rest", () => {
  expect(parseSizeBytes("4096")).toBe(4096);
  expect(parseSizeBytes("4096b")).toBe(4096);
  expect(parseSizeBytes("64k")).toBe(64 * 1024);
  expect(parseSizeBytes("64KiB")).toBe(64 * 1024);
  expect(parseSizeBytes("3M")).toBe(3 * 1024 ** 2);
  expect(parseSizeBytes("2GB")).toBe(2 * 1024 ** 3);
  expect(parseSizeBytes("1T")).toBe(1024 ** 4);
  expect(parseSizeBytes("4P")).toBe(4 * 1024 ** 5);
  expect(parseSizeBytes("8P")).toBeUndefined(); // 2^53: past the safe integers
  for (const bad of ["", "G", "1.5G", "-1", "1X", "1 G G", "0x10", "9007199254740993"]) {
    expect(parseSizeBytes(bad)).toBeUndefined();
  }
});

test("formatSizeBytes() prints binary units", () => {
  expect(formatSizeBytes(512)).toBe("512 bytes");
  expect(formatSizeBytes(64 * 1024 ** 2)).toBe("64 MiB");
  expect(formatSizeBytes(1.5 * 1024 ** 3)).toBe("1.5 GiB");
});

describe("parseDevConfig() reads rbd config strings, ours and tcmu-runner's", () => {
  test("rbd/<pool>/<image> with the defaults", () => {
    expect(parseDevConfig("rbd/rbd/disk1")).toEqual({ kind: "rbd", pool: "rbd", image: "disk1", confPath: "/etc/ceph/ceph.conf", clientId: "admin", readOnly: false });
  });

  test("every option; a snapshot makes the device read-only", () => {
    expect(parseDevConfig("rbd/vms/disk2;snap=base;ns=tenant1;conf=/srv/ceph/c.conf;id=gateway")).toEqual({
      kind: "rbd",
      pool: "vms",
      image: "disk2",
      snapshot: "base",
      namespace: "tenant1",
      confPath: "/srv/ceph/c.conf",
      clientId: "gateway",
      readOnly: true,
    });
    expect(parseDevConfig("rbd/vms/disk2@gold")).toMatchObject({ snapshot: "gold", readOnly: true });
    expect(parseDevConfig("rbd/vms/disk2;ro")).toMatchObject({ readOnly: true });
  });

  test("tcmu-runner's rbd strings as targetcli and ceph-iscsi write them", () => {
    expect(parseDevConfig("rbd/rbd/iscsi-img;osd_op_timeout=30;conf=/etc/ceph/ceph.conf;id=admin")).toMatchObject({
      pool: "rbd",
      image: "iscsi-img",
      osdOpTimeoutSeconds: 30,
      clientId: "admin",
    });
  });

  test.each([
    ["rbd/onlypool", 'rbd "onlypool"', "rbd/<pool>/<image>"],
    ["rbd/a/b/c", 'rbd "a/b/c"', "rbd/<pool>/<image>"],
    ["rbd/p/img;conf=relative.conf", 'option "conf=relative.conf"', "absolute"],
    ["rbd/p/img@s1;snap=s2", 'option "snap"', "given twice"],
    ["rbd/p/img;osd_op_timeout=0", 'option "osd_op_timeout=0"', "at least 1"],
    ["rbd/p/img;size=1G", 'option "size"', "unknown for rbd"],
  ])("%s is refused at %s", (config, part, problem) => {
    let caught: unknown;
    try {
      parseDevConfig(config);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DevConfigError);
    expect((caught as DevConfigError).part).toBe(part);
    expect((caught as Error).message).toContain(problem);
  });
});
