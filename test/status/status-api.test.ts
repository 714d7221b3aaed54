// GET /api/status over real simulated devices under load: the report validates against the
// exported schema, its numbers move from one sample to the next, and a device whose ring broke
// or whose unit was stopped says so; the page at / comes with a CSP that allows nothing else.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startMetricsServer } from "../../src/metrics/http.ts";
import { StatusReportSchema, type DeviceStatus, type StatusReport } from "../../src/status/status-schema.ts";
import { startSimStatusServer, type SimStatusServer } from "./sim-status-server.ts";

let sim: SimStatusServer;
beforeAll(async () => {
  sim = await startSimStatusServer({ devices: 3, intervalMs: 200 });
});
afterAll(() => sim.close());

async function getStatus(query = ""): Promise<StatusReport> {
  const response = await fetch(`${sim.baseUrl}/api/status${query}`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("application/json");
  return StatusReportSchema.parse(await response.json());
}

/** The next report after the history has taken `samples` more samples. */
async function afterSamples(previous: StatusReport, samples: number, query = ""): Promise<StatusReport> {
  for (let waited = 0; waited < 10_000; waited += 50) {
    const report = await getStatus(query);
    if (report.history.lastSeq >= previous.history.lastSeq + samples) return report;
    await Bun.sleep(50);
  }
  throw new Error(`the history did not advance ${samples} samples in 10 s`);
}

const device = (report: StatusReport, name: string): DeviceStatus => report.devices.find((candidate) => candidate.name === name)!;

test("the report validates, names every device with its backstore, and its numbers move between samples", async () => {
  const first = await afterSamples(await getStatus(), 2);
  const second = await afterSamples(first, 3);
  expect(second.devices.map((entry) => entry.name)).toEqual(sim.names);
  expect(second.history.intervalMs).toBe(200);
  expect(second.history.capacity).toBe(300);
  expect(second.history.windowSeconds).toBe(60);
  for (const name of sim.names) {
    const before = device(first, name);
    const after = device(second, name);
    expect(after.state).toBe("served");
    expect(after.uio).toBe("-");
    expect(after.backstore.kind).toBe("ram");
    expect(after.sizeBytes).toBe(16 * 1024 * 1024);
    expect(after.blockSizeBytes).toBe(512);
    expect(after.totals.commands).toBeGreaterThan(before.totals.commands);
    expect(after.totals.readBytes).toBeGreaterThan(before.totals.readBytes);
    expect(after.totals.writtenBytes).toBeGreaterThan(before.totals.writtenBytes);
    expect(after.rates.iops).toBeGreaterThan(0);
    // Each rate is rounded to 0.1 on its own, so the parts may sum past the total by that much.
    expect(after.rates.readIops + after.rates.writeIops).toBeLessThanOrEqual(after.rates.iops + 0.1 + 1e-9);
    expect(after.rates.readBytesPerSecond).toBeGreaterThan(0);
    expect(after.rates.latencyP99Ms ?? 0).toBeGreaterThanOrEqual(after.rates.latencyP50Ms ?? 0);
    // Series end at the newest sample; one more sample each time.
    expect(after.series.firstSeq + after.series.iops.length - 1).toBe(second.history.lastSeq);
    expect(after.series.iops.length).toBeGreaterThan(before.series.iops.length);
    expect(after.series.iops.at(-1)).toBe(after.rates.iops);
  }
  expect(device(second, "disk0").exports).toEqual(["loop naa.5001405000000000"]);
  expect(device(second, "disk1").exports).toEqual([]);
  // The aggregate is the devices' sum (rounded per device, hence the tolerance).
  const summed = second.devices.reduce((sum, entry) => sum + entry.rates.iops, 0);
  expect(Math.abs(second.aggregate.rates.iops - summed)).toBeLessThan(1);
  expect(second.aggregate.rates.latencyP50Ms).not.toBeNull();
  expect(second.process.pid).toBe(process.pid);
  expect(second.process.rssBytes).toBeGreaterThan(10 * 1024 * 1024);
  expect(second.process.cpuPercent).toBeGreaterThan(0);
  expect(second.process.series.rssBytes.length).toBe(second.aggregate.series.iops.length);
  expect(second.serve.uptimeSeconds).toBeGreaterThan(first.serve.uptimeSeconds);
  expect(second.generatedAt > first.generatedAt).toBe(true);
});

test("?window bounds the series: 0 sends only the current rates; a bad value is a 400", async () => {
  const now = await getStatus("?window=0");
  expect(now.history.windowSeconds).toBe(0);
  expect(now.devices.every((entry) => entry.series.iops.length === 0 && entry.series.firstSeq === now.history.lastSeq + 1)).toBe(true);
  const oneSecond = await afterSamples(now, 6, "?window=1");
  // One second of 200 ms samples.
  expect(oneSecond.aggregate.series.iops.length).toBe(5);
  for (const bad of ["abc", "1.5", "-1", "301"]) {
    const response = await fetch(`${sim.baseUrl}/api/status?window=${bad}`);
    expect(response.status).toBe(400);
    expect(await response.text()).toStartWith("window: ");
  }
});

test("a device whose ring broke is reported broken, with the ring's error among the warnings; the others keep moving", async () => {
  await sim.breakRing("disk1");
  const before = await afterSamples(await getStatus(), 1);
  const after = await afterSamples(before, 2);
  expect(device(after, "disk1").state).toBe("broken");
  expect(device(after, "disk1").totals.commands).toBe(device(before, "disk1").totals.commands);
  expect(device(after, "disk1").rates.iops).toBe(0);
  expect(device(after, "disk0").state).toBe("served");
  expect(device(after, "disk0").totals.commands).toBeGreaterThan(device(before, "disk0").totals.commands);
  expect(after.warnings.some((warning) => warning.level === "error" && warning.source === "ring" && warning.message.includes("the ring is corrupt"))).toBe(true);
});

test("a unit stopped by START STOP UNIT is reported stopped", async () => {
  await sim.stopUnit("disk2");
  const report = await afterSamples(await getStatus(), 1);
  expect(device(report, "disk2").state).toBe("stopped");
});

test("the page at / is one HTML document that may fetch nothing but its own origin", async () => {
  const response = await fetch(`${sim.baseUrl}/`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
  expect(response.headers.get("content-security-policy")).toContain("default-src 'none'");
  expect(response.headers.get("content-security-policy")).toContain("connect-src 'self'");
  const html = await response.text();
  expect(html).toStartWith("<!doctype html>");
  expect(html).toContain('<table id="devices">');
  expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
});

test("a listener without a status source serves neither /api/status nor the page", async () => {
  const server = startMetricsServer({ hostname: "127.0.0.1", port: 0 }, { metricsText: () => "", health: () => ({ healthy: true }) });
  try {
    expect((await fetch(`http://127.0.0.1:${server.port}/api/status`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${server.port}/`)).status).toBe(404);
  } finally {
    await server.stop(true);
  }
});
