// `tcmu-appliance status [--json]` as a subprocess against a metrics listener over simulated
// devices, one of them with a broken ring; and the one-line failures.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { StatusReportSchema } from "../../src/status/status-schema.ts";
import { startSimStatusServer, type SimStatusServer } from "../status/sim-status-server.ts";
import { closedPort, runCli } from "./cli-process.ts";

let sim: SimStatusServer;
beforeAll(async () => {
  sim = await startSimStatusServer({ devices: 3, intervalMs: 200 });
  await sim.breakRing("disk1");
  // A couple of samples, so the rates are not the first tick's zeros.
  while (sim.provider.history.lastSeq < 3) await Bun.sleep(50);
});
afterAll(() => sim.close());

test("status --json prints the report serve sent, valid against the schema, the broken device broken", async () => {
  const { code, stdout, stderr } = await runCli("status", "--json", "--metrics-listen", sim.listen);
  expect(stderr).toBe("");
  expect(code).toBe(0);
  const report = StatusReportSchema.parse(JSON.parse(stdout));
  expect(report.devices.map((device) => [device.name, device.state])).toEqual([
    ["disk0", "served"],
    ["disk1", "broken"],
    ["disk2", "served"],
  ]);
  expect(report.history.windowSeconds).toBe(60);
  expect(report.devices[0]!.series.iops.length).toBeGreaterThan(0);
  expect(report.devices[0]!.rates.iops).toBeGreaterThan(0);
});

test("status prints the rates table, the devices' details and the ring's error", async () => {
  const { code, stdout } = await runCli("status", "--metrics-listen", sim.listen);
  expect(code).toBe(0);
  const lines = stdout.split("\n");
  expect(lines[0]).toMatch(/^serve pid \d+, up \d+s, 3 device\(s\), rss [\d.]+ MiB, cpu [\d.]+%, netlink on/);
  expect(lines).toContainEqual(expect.stringMatching(/^DEVICE\s+r\/s\s+w\/s\s+rMB\/s\s+wMB\/s\s+p50_ms\s+p99_ms\s+inflight\s+STATE$/));
  const disk0 = lines.find((line) => line.startsWith("disk0 "))!;
  expect(disk0).toMatch(/^disk0\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+|-)\s+([\d.]+|-)\s+\d+\s+served$/);
  expect(Number(disk0.split(/\s+/)[1])).toBeGreaterThan(0);
  expect(lines.find((line) => line.startsWith("disk1 "))).toMatch(/^disk1\s+0\.0\s+0\.0\s+0\.00\s+0\.00\s+-\s+-\s+0\s+broken$/);
  expect(lines).toContainEqual(expect.stringMatching(/^\(all\)\s+[\d.]+/));
  expect(lines).toContainEqual(expect.stringMatching(/^DEVICE\s+UIO\s+BACKSTORE\s+SIZE\s+BLOCK\s+COMMANDS\s+READ\s+WRITTEN\s+ERRORS\s+EXPORTS$/));
  expect(lines).toContainEqual(expect.stringMatching(/^disk0\s+-\s+ram\s+16 MiB\s+512\s+\d+\s+.*loop naa\.5001405000000000$/));
  expect(stdout).toContain("warnings (1):");
  expect(stdout).toMatch(/error ring: disk1: ring entry at \d+ has length 1048576/);
});

test("status with no serve listening is one line on stderr and exit 1", async () => {
  const port = await closedPort();
  const { code, stdout, stderr } = await runCli("status", "--metrics-listen", `127.0.0.1:${port}`);
  expect(code).toBe(1);
  expect(stdout).toBe("");
  expect(stderr).toBe(`status: no serve answers on 127.0.0.1:${port} (connection refused); is tcmu-appliance serve running with --metrics-listen 127.0.0.1:${port}?\n`);
});

test("status --metrics-listen that is no ADDR:PORT exits 2 naming the flag", async () => {
  const { code, stderr } = await runCli("status", "--metrics-listen", "localhost");
  expect(code).toBe(2);
  expect(stderr).toBe("status: --metrics-listen: an address:port such as 127.0.0.1:9540\n");
});
