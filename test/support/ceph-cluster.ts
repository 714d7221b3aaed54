// A throwaway Ceph cluster for tests (scripts/ceph/test-cluster.sh): one monitor and one memstore
// OSD on 127.0.0.1 with the pool "rbd", in a fresh folder under the temp dir. Clients need only
// confPath (rbd -c confPath; librbd: rados_conf_read_file(confPath), client id "admin"). stop()
// kills the daemons and removes the folder; a test process that dies first leaves the cluster to
// the script's watchdog (after lifetimeSeconds) and, on a normal exit, to the hook below.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SCRIPT = new URL("../../scripts/ceph/test-cluster.sh", import.meta.url).pathname;
/** The watchdog stops a cluster a crashed test run left behind after this long. */
const LIFETIME_S = 900;

export interface CephCluster {
  /** DIR/ceph.conf: mon address, fsid and the admin keyring's path. */
  confPath: string;
  /** The cluster's folder (logs in log/, pid files and admin sockets in run/); removed by stop(). */
  dir: string;
  /** Kills the cluster and removes dir; later calls return the first call's promise. */
  stop(): Promise<void>;
}

// Clusters not yet stopped, stopped synchronously if the process exits without stop().
const running = new Set<string>();
let exitHook = false;

export async function startCephCluster(options: { lifetimeSeconds?: number } = {}): Promise<CephCluster> {
  // An empty folder of our own: the script starts in it and its stop removes it.
  const dir = mkdtempSync(join(tmpdir(), "tcmu-ceph-"));
  const lifetime = String(options.lifetimeSeconds ?? LIFETIME_S);
  const start = Bun.spawn(["bash", SCRIPT, "start", dir, "--lifetime", lifetime], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([
    new Response(start.stdout).text(),
    new Response(start.stderr).text(),
    start.exited,
  ]);
  if (code !== 0) {
    // The script stops what it started; the folder is left only when it failed before that.
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`scripts/ceph/test-cluster.sh start failed (exit ${code}):\n${stderr}`);
  }
  running.add(dir);
  if (!exitHook) {
    exitHook = true;
    process.once("exit", () => {
      for (const left of running) Bun.spawnSync(["bash", SCRIPT, "stop", left], { stdout: "ignore", stderr: "ignore" });
    });
  }
  let stopped: Promise<void> | undefined;
  return {
    confPath: stdout.trim(),
    dir,
    stop: () => (stopped ??= stopCluster(dir)),
  };
}

async function stopCluster(dir: string): Promise<void> {
  const stop = Bun.spawn(["bash", SCRIPT, "stop", dir], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(stop.stderr).text(), stop.exited]);
  running.delete(dir);
  if (code !== 0) throw new Error(`scripts/ceph/test-cluster.sh stop failed (exit ${code}):\n${stderr}`);
}

/** Runs `rbd -c confPath ARGS…` against a test cluster and returns its output; a failure throws with rbd's words. */
export function rbdCli(confPath: string, ...args: string[]): string {
  const run = Bun.spawnSync(["rbd", "-c", confPath, ...args], { stdout: "pipe", stderr: "pipe" });
  if (run.exitCode !== 0) throw new Error(`rbd ${args.join(" ")}: exit ${run.exitCode}: ${run.stderr.toString()}`);
  return run.stdout.toString();
}
