// Internal snapshots: each has its own L1 table and disk size; `snapshot` picks one by ID or
// name (like `qemu-img convert -s`), and what it reads equals QEMU's `-l snapshot.name=`.
import { afterAll, expect, test } from "bun:test";
import { ImageRefusedError, openQcow2Backstore } from "../../../backstores/qcow2/index.ts";
import { expectSameBytes, ImageLab, MiB, readThroughSim, sourceBytes } from "./support.ts";

const lab = new ImageLab();
afterAll(() => lab.remove());

async function expectSnapshotReadsLikeQemu(name: string, snapshot: string, snapshotName: string, sizeBytes: number): Promise<void> {
  // QEMU reads a snapshot at the image's current size; past the snapshot's own size it is zeros.
  const reference = lab.reference(name, snapshotName);
  const backstore = openQcow2Backstore(lab.path(name), { sizeBytes, readOnly: true, snapshot });
  expect(backstore.warnings).toEqual([]);
  expectSameBytes(await readThroughSim(backstore, sizeBytes), reference.subarray(0, sizeBytes), `${name} snapshot ${snapshot}`);
  expect(reference.subarray(sizeBytes).every((byte) => byte === 0)).toBe(true);
}

for (const compat of ["1.1", "0.10"]) {
  // QEMU cannot resize a v2 image that has snapshots; v3 snapshots record their own disk size.
  const resized = compat === "1.1";
  test(`snapshots of a compat=${compat} image${resized ? ", taken before a resize" : ""}`, async () => {
    const name = `snap-${compat}.qcow2`;
    lab.writeFile(`${name}.src`, sourceBytes(4 * MiB, 41));
    lab.qemuImg("convert", "-f", "raw", "-O", "qcow2", "-c", "-o", `compat=${compat}`, `${name}.src`, name);
    lab.qemuImg("snapshot", "-c", "first", name);
    lab.qemuIo("qcow2", name, "write -P 0x91 0 64k", "write -P 0x92 2M 1M");
    lab.qemuImg("snapshot", "-c", "second", name);
    if (resized) lab.qemuImg("resize", name, "6M");
    lab.qemuIo("qcow2", name, "write -P 0x93 3M 64k", "write -P 0x94 64k 4k");
    await expectSnapshotReadsLikeQemu(name, "first", "first", 4 * MiB);
    await expectSnapshotReadsLikeQemu(name, "2", "second", 4 * MiB);
    const reference = lab.reference(name);
    const active = openQcow2Backstore(lab.path(name), { sizeBytes: reference.byteLength, readOnly: true });
    expectSameBytes(await readThroughSim(active, reference.byteLength), reference, `${name} active`);
  });
}

test("an unknown snapshot is refused with the names there are", () => {
  lab.qemuImg("create", "-f", "qcow2", "named.qcow2", "1M");
  lab.qemuImg("snapshot", "-c", "golden", "named.qcow2");
  expect(() => openQcow2Backstore(lab.path("named.qcow2"), { sizeBytes: MiB, readOnly: true, snapshot: "silver" })).toThrow(ImageRefusedError);
  expect(() => openQcow2Backstore(lab.path("named.qcow2"), { sizeBytes: MiB, readOnly: true, snapshot: "silver" })).toThrow("no snapshot 'silver' (snapshots: golden)");
});

test("a dev_size larger than the snapshot's disk size is refused", () => {
  lab.qemuImg("create", "-f", "qcow2", "grown.qcow2", "1M");
  lab.qemuImg("snapshot", "-c", "small", "grown.qcow2");
  lab.qemuImg("resize", "grown.qcow2", "2M");
  expect(() => openQcow2Backstore(lab.path("grown.qcow2"), { sizeBytes: 2 * MiB, readOnly: true, snapshot: "small" })).toThrow("snapshot 'small''s virtual size 1048576");
  openQcow2Backstore(lab.path("grown.qcow2"), { sizeBytes: MiB, readOnly: true, snapshot: "small" }).close();
});
