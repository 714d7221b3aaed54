// A throwaway Ceph cluster for one test file: scripts/ceph/test-cluster.sh in a temp directory
// (one mon, one memstore OSD, pool "rbd", on 127.0.0.1), stopped by stop() or, should the test
// process die, by the script's own watchdog.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SCRIPT = join(import.meta.dir, "..", "..", "scripts", "ceph", "test-cluster.sh");
/** The watchdog stops a cluster a crashed test run left behind after this long. */
const LIFETIME_S = 900;

export interface CephCluster {
  confPath: string;
  dir: string;
  stop(): Promise<void>;
}

export async function startCephCluster(): Promise<CephCluster> {
  const dir = join(mkdtempSync(join(tmpdir(), "tcmu-ceph-")), "cluster");
  const start = Bun.spawn(["bash", SCRIPT, "start", dir, "--lifetime", String(LIFETIME_S)], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(start.stdout).text(), new Response(start.stderr).text(), start.exited]);
  if (code !== 0) throw new Error(`test-cluster.sh start failed (exit ${code}): ${stderr.trim().split("\n").slice(-5).join(" | ")}`);
  const confPath = stdout.trim();
  return {
    confPath,
    dir,
    async stop() {
      const stop = Bun.spawn(["bash", SCRIPT, "stop", dir], { stdout: "ignore", stderr: "pipe" });
      if ((await stop.exited) !== 0) throw new Error(`test-cluster.sh stop failed: ${await new Response(stop.stderr).text()}`);
    },
  };
}
