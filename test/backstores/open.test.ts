import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { openBackstore, type BackstoreContext } from "../../backstores/open.ts";
import { shmFilePath } from "../../backstores/ram/shm-file.ts";
import type { Backstore } from "../../backstores/types.ts";
import { DevConfigError } from "../../src/config/dev-config.ts";
import { SimDevice } from "../../src/sim/sim-device.ts";
import * as cdbs from "../support/cdbs.ts";
import { makeTempDir, uniqueDeviceKey } from "./support.ts";

const SIZE_BYTES = 4 * 1024 * 1024;
const QCOW2_CLUSTER_BYTES = 65536;

let directory: ReturnType<typeof makeTempDir>;
const opened: Backstore[] = [];

beforeEach(() => {
  directory = makeTempDir();
});

afterEach(async () => {
  for (const store of opened.splice(0)) await (store.destroy ?? store.close).call(store);
  directory.remove();
});

function context(overrides: Partial<BackstoreContext> = {}): BackstoreContext {
  return { deviceKey: uniqueDeviceKey("factory"), sizeBytes: SIZE_BYTES, blockSizeBytes: 512, ...overrides };
}

async function open(devConfigPath: string, overrides: Partial<BackstoreContext> = {}): Promise<Backstore> {
  const store = await openBackstore(devConfigPath, context(overrides));
  opened.push(store);
  return store;
}

async function refusal(devConfigPath: string, overrides: Partial<BackstoreContext> = {}): Promise<Error> {
  try {
    opened.push(await openBackstore(devConfigPath, context(overrides)));
  } catch (error) {
    return error as Error;
  }
  throw new Error(`${devConfigPath} was opened`);
}

/** An empty qcow2 v3 image: header, refcount table and block, and an all-zero L1 table. */
function writeEmptyQcow2(path: string, sizeBytes: number): void {
  const image = new Uint8Array(4 * QCOW2_CLUSTER_BYTES);
  const view = new DataView(image.buffer);
  const l1Entries = Math.ceil(sizeBytes / (QCOW2_CLUSTER_BYTES * (QCOW2_CLUSTER_BYTES / 8)));
  image.set([0x51, 0x46, 0x49, 0xfb]); // "QFI\xfb"
  view.setUint32(4, 3, false); // version
  view.setUint32(20, 16, false); // cluster_bits
  view.setBigUint64(24, BigInt(sizeBytes), false);
  view.setUint32(36, l1Entries, false);
  view.setBigUint64(40, BigInt(3 * QCOW2_CLUSTER_BYTES), false); // l1_table_offset
  view.setBigUint64(48, BigInt(QCOW2_CLUSTER_BYTES), false); // refcount_table_offset
  view.setUint32(56, 1, false); // refcount_table_clusters
  view.setUint32(96, 4, false); // refcount_order: 16-bit refcounts
  view.setUint32(100, 104, false); // header_length
  view.setBigUint64(QCOW2_CLUSTER_BYTES, BigInt(2 * QCOW2_CLUSTER_BYTES), false);
  for (let cluster = 0; cluster < 4; cluster += 1) view.setUint16(2 * QCOW2_CLUSTER_BYTES + 2 * cluster, 1, false);
  writeFileSync(path, image);
}

describe("openBackstore()", () => {
  test("ram[/label][;max=] opens a named, capped RAM store that destroy() removes", async () => {
    const deviceKey = uniqueDeviceKey("ram");
    const store = await openBackstore("ram/scratch;max=2M", context({ deviceKey }));
    expect(store.kind).toBe("ram");
    expect(store.description).toBe("ram/scratch");
    expect(existsSync(shmFilePath(deviceKey))).toBe(true);
    const device = new SimDevice({ backstore: store, sizeBytes: SIZE_BYTES, blockSizeBytes: 512 });
    expect((await device.submit(cdbs.write10(0, 8), { dataOut: new Uint8Array(4096).fill(1) })).status).toBe(0);
    expect((await device.submit(cdbs.write10(4096, 8), { dataOut: new Uint8Array(4096).fill(1) })).status).toBe(0);
    const capped = await device.submit(cdbs.write10(6144, 8), { dataOut: new Uint8Array(4096).fill(1) });
    expect(cdbs.senseTriple(capped.sense)).toEqual([0x07, 0x27, 0x07]);
    await device.close();
    await store.destroy?.();
    expect(existsSync(shmFilePath(deviceKey))).toBe(false);
  });

  test("file/<path> with options opens a file store", async () => {
    const store = await open(`file/${directory.path}/a.img;direct;sync`);
    expect(store.kind).toBe("file");
    expect(store.description).toBe(`file ${directory.path}/a.img;direct;sync`);
    expect(store.capabilities.volatileCache).toBe(false);
  });

  test("a bare path to a raw image opens it as a file", async () => {
    writeFileSync(`${directory.path}/raw.img`, cdbs.patternBytes(SIZE_BYTES, 3));
    const store = await open(`${directory.path}/raw.img;ro`);
    expect(store.kind).toBe("file");
    expect(store.capabilities.readOnly).toBe(true);
  });

  test("a bare path to a qcow2 image opens it as qcow2, read-only", async () => {
    writeEmptyQcow2(`${directory.path}/vm.qcow2`, SIZE_BYTES);
    const store = await open(`${directory.path}/vm.qcow2`);
    expect(store.kind).toBe("qcow2");
    expect(store.capabilities.readOnly).toBe(true);
  });

  test("options that do not fit the detected format are refused, naming them", async () => {
    writeEmptyQcow2(`${directory.path}/vm.qcow2`, SIZE_BYTES);
    const direct = await refusal(`${directory.path}/vm.qcow2;direct`);
    expect(direct).toBeInstanceOf(DevConfigError);
    expect(direct.message).toContain(`option "direct": applies to raw images only; ${directory.path}/vm.qcow2 is qcow2`);
    writeFileSync(`${directory.path}/raw.img`, new Uint8Array(4096));
    const snapshot = await refusal(`${directory.path}/raw.img;snapshot=base`);
    expect(snapshot.message).toContain('option "snapshot=base": applies to qcow2 images only');
  });

  test("a bare path must exist: there is nothing to detect otherwise", async () => {
    const error = await refusal(`${directory.path}/missing.img`);
    expect(error.message).toContain("does not exist (a bare path must name an image; file/<path> creates one)");
  });

  test("grammar errors come through as DevConfigError", async () => {
    const error = await refusal("file/relative.img");
    expect(error).toBeInstanceOf(DevConfigError);
    expect(error.message).toContain('file path "relative.img": must be absolute');
  });
});

describe("openBackstore() with allowed roots", () => {
  test("paths under a root open, new files included", async () => {
    const allowedRoots = [`${directory.path}/images`];
    mkdirSync(`${directory.path}/images`);
    const store = await open(`file/${directory.path}/images/new.img`, { allowedRoots });
    expect(store.description).toContain(`${directory.path}/images/new.img`);
  });

  test("paths outside every root are refused, naming the path", async () => {
    mkdirSync(`${directory.path}/images`);
    const error = await refusal(`file/${directory.path}/elsewhere.img`, { allowedRoots: [`${directory.path}/images`, "/srv"] });
    expect(error).toBeInstanceOf(DevConfigError);
    expect(error.message).toContain(`path "${directory.path}/elsewhere.img": lies outside the allowed roots ${directory.path}/images, /srv`);
    expect(existsSync(`${directory.path}/elsewhere.img`)).toBe(false);
  });

  test("a symlink inside a root that leads outside is refused", async () => {
    mkdirSync(`${directory.path}/images`);
    writeFileSync(`${directory.path}/secret.img`, new Uint8Array(4096));
    symlinkSync(`${directory.path}/secret.img`, `${directory.path}/images/link.img`);
    const error = await refusal(`${directory.path}/images/link.img`, { allowedRoots: [`${directory.path}/images`] });
    expect(error.message).toContain(`resolves to ${directory.path}/secret.img`);
  });

  test("a name that merely starts with '..' stays inside", async () => {
    mkdirSync(`${directory.path}/images`);
    const store = await open(`file/${directory.path}/images/..hidden.img`, { allowedRoots: [`${directory.path}/images`] });
    expect(store.kind).toBe("file");
  });

  test("RAM stores need no root", async () => {
    const store = await open("ram", { allowedRoots: [`${directory.path}/images`] });
    expect(store.kind).toBe("ram");
  });
});
