// `inspect` describes an image and its chain with the fields `qemu-img info --backing-chain
// --output=json` reports, and refuses what the backstore refuses.
import { afterAll, expect, test } from "bun:test";
import { describeChain } from "../../../backstores/qcow2/describe.ts";
import { ImageRefusedError } from "../../../backstores/qcow2/errors.ts";
import { formatImage, toJson } from "../../../src/cli/inspect.ts";
import { ImageLab, MiB, sourceBytes } from "./support.ts";

const lab = new ImageLab();
afterAll(() => lab.remove());

/** The fields both describe, from either side. */
function comparable(json: Record<string, unknown>): Record<string, unknown> {
  const specific = (json["format-specific"] as { data: Record<string, unknown> } | undefined)?.data;
  const snapshots = (json.snapshots as { id: string; name: string; "vm-state-size": number }[] | undefined) ?? [];
  return {
    format: json.format,
    "virtual-size": json["virtual-size"],
    "cluster-size": json["cluster-size"],
    "backing-filename": json["backing-filename"],
    "full-backing-filename": json["full-backing-filename"],
    "backing-filename-format": json["backing-filename-format"],
    compat: specific?.compat,
    "compression-type": specific?.["compression-type"],
    "extended-l2": specific?.["extended-l2"],
    "refcount-bits": specific?.["refcount-bits"],
    "lazy-refcounts": specific?.["lazy-refcounts"],
    "data-file": specific?.["data-file"],
    "data-file-raw": specific?.["data-file-raw"],
    snapshots: snapshots.map((snapshot) => [snapshot.id, snapshot.name, snapshot["vm-state-size"]]),
  };
}

test("a three-image chain with snapshots, zstd and extended L2 is described like qemu-img info", () => {
  lab.writeFile("base.raw", sourceBytes(2 * MiB, 81));
  lab.qemuImg("create", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4096", "-b", "base.raw", "-F", "raw", "mid.qcow2", "3M");
  lab.qemuImg("snapshot", "-c", "before", "mid.qcow2");
  lab.qemuImg("create", "-f", "qcow2", "-o", "compression_type=zstd,extended_l2=on,lazy_refcounts=on", "-b", "mid.qcow2", "-F", "qcow2", "top.qcow2", "4M");
  const ours = describeChain(lab.path("top.qcow2"));
  const qemu = JSON.parse(lab.qemuImg("info", "--backing-chain", "--output=json", lab.path("top.qcow2"))) as Record<string, unknown>[];
  expect(ours.map((info) => comparable(toJson(info)))).toEqual(qemu.map(comparable));
  expect(ours[0]!.features).toEqual(["compression type", "extended L2", "lazy refcounts"]);
  expect(ours.map((info) => info.version)).toEqual([3, 2, undefined]);
  const text = ours.map(formatImage).join("\n\n");
  expect(text).toContain("backing file: mid.qcow2");
  expect(text).toContain("compression type: zstd");
  expect(text).toMatch(/1\s+before\s+0 B/);
});

test("an external data file and qcow v1 are described", () => {
  lab.qemuImg("create", "-f", "qcow2", "-o", "data_file=ext.data,data_file_raw=on", "ext.qcow2", "1M");
  const [ext] = describeChain(lab.path("ext.qcow2"));
  expect(comparable(toJson(ext!))).toEqual(comparable(JSON.parse(lab.qemuImg("info", "--output=json", "ext.qcow2"))));
  lab.qemuImg("create", "-f", "qcow", "old.qcow", "1M");
  const [old] = describeChain(lab.path("old.qcow"));
  expect(old).toMatchObject({ format: "qcow", version: 1, virtualSizeBytes: MiB, clusterSizeBytes: 4096 });
});

test("inspect refuses what the backstore refuses", () => {
  lab.qemuImg("create", "-f", "qcow2", "loop.qcow2", "1M");
  lab.qemuImg("rebase", "-u", "-b", "loop.qcow2", "-F", "qcow2", "loop.qcow2");
  expect(() => describeChain(lab.path("loop.qcow2"))).toThrow(ImageRefusedError);
});
