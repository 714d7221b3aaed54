// serve's wiring of the status page: the Appliance's metrics listener answers /api/status with
// a report the schema accepts, and serve's own warnings reach it through the recording log.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_DATA_PLANE_SETTINGS } from "../../src/data-plane/settings.ts";
import { Appliance } from "../../src/serve/appliance.ts";
import { StatusReportSchema } from "../../src/status/status-schema.ts";
import { FakeConfigfs, RecordingSetup } from "../configfs/fake-configfs.ts";

const fake = new FakeConfigfs();
const runDir = mkdtempSync(join(tmpdir(), "appliance-status-"));
afterAll(() => {
  fake.dispose();
  rmSync(runDir, { recursive: true, force: true });
});

test("serve's listener serves /api/status and the page; serve's warnings are in the report", async () => {
  const warned: string[] = [];
  const log = { debug: () => {}, info: () => {}, warn: (message: string) => void warned.push(message), error: () => {} };
  const appliance = new Appliance({
    subtype: "appliance",
    allowedRoots: [],
    roots: fake.roots,
    io: fake,
    setup: new RecordingSetup(fake.roots),
    runDir,
    configPath: undefined,
    configRequired: false,
    metricsListen: "127.0.0.1:0",
    netlink: false,
    log,
    ringLog: log,
    dataPlane: { ...DEFAULT_DATA_PLANE_SETTINGS, threads: 1 },
    otherDaemons: () => [],
  });
  // Before start: serve warns that it ignores the SIGHUP (and still logs it where it did).
  await appliance.reload();
  expect(warned).toContain("SIGHUP ignored: serve is still starting or already stopping");
  await appliance.start();
  try {
    const base = `http://127.0.0.1:${appliance.metricsPort}`;
    const report = StatusReportSchema.parse(await (await fetch(`${base}/api/status`)).json());
    expect(report.devices).toEqual([]);
    expect(report.serve.netlink).toBe(false);
    expect(report.serve.stopping).toBe(false);
    expect(report.history.intervalMs).toBe(1000);
    expect(report.warnings).toContainEqual(expect.objectContaining({ level: "warn", source: "serve", message: "SIGHUP ignored: serve is still starting or already stopping" }));
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("tcmu-appliance status");
  } finally {
    expect(await appliance.stop("test")).toBe(0);
  }
});
