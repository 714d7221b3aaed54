// The throwaway Ceph cluster the rbd tests use (test/support/ceph-cluster.ts over
// scripts/ceph/test-cluster.sh): it serves the rbd CLI from its ceph.conf alone, two of them
// run side by side without sharing anything, and stop() leaves nothing behind.
import { expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { rbdCli, startCephCluster } from "./ceph-cluster.ts";

const CLUSTER_TEST_MS = 180_000;

/** The fsid and mon host lines of a cluster's ceph.conf. */
function identity(confPath: string): { fsid: string; monHost: string } {
  const conf = readFileSync(confPath, "utf8");
  return { fsid: /^fsid = (.+)$/m.exec(conf)?.[1] ?? "", monHost: /^mon host = (.+)$/m.exec(conf)?.[1] ?? "" };
}

test("a cluster serves rbd create/info from its ceph.conf, on 127.0.0.1, and stop() removes it", async () => {
  const cluster = await startCephCluster();
  try {
    expect(cluster.confPath).toBe(`${cluster.dir}/ceph.conf`);
    expect(identity(cluster.confPath).monHost).toMatch(/^\[v2:127\.0\.0\.1:\d+,v1:127\.0\.0\.1:\d+\]$/);
    rbdCli(cluster.confPath, "create", "rbd/img1", "--size", "64M");
    const info = JSON.parse(rbdCli(cluster.confPath, "info", "rbd/img1", "--format", "json")) as { size: number };
    expect(info.size).toBe(64 * 1024 * 1024);
  } finally {
    await cluster.stop();
  }
  expect(existsSync(cluster.dir)).toBe(false);
  await cluster.stop(); // idempotent
}, CLUSTER_TEST_MS);

test("two clusters at once get their own fsid and mon ports and do not see each other's images", async () => {
  const [a, b] = await Promise.all([startCephCluster(), startCephCluster()]);
  try {
    expect(identity(a.confPath).fsid).not.toBe(identity(b.confPath).fsid);
    expect(identity(a.confPath).monHost).not.toBe(identity(b.confPath).monHost);
    rbdCli(a.confPath, "create", "rbd/only-a", "--size", "8M");
    expect(rbdCli(b.confPath, "ls").trim()).toBe("");
    expect(rbdCli(a.confPath, "ls").trim()).toBe("only-a");
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
  expect(existsSync(a.dir) || existsSync(b.dir)).toBe(false);
}, CLUSTER_TEST_MS);
