// The status page in a real headless chromium (over CDP): device rows appear, their numbers
// and the charts move between two observations, a broken ring shows as broken with its
// warning, and 64 devices update in place within a frame's budget. The first test leaves its
// screenshot in the temp directory (tcmu-appliance-status-page.png; docs/status-page.png is a
// copy of one). Chromium missing is a failure, not a skip: CI installs it.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMetricsServer } from "../../src/metrics/http.ts";
import { DeviceMetrics, LATENCY_BUCKETS_SECONDS, OPCODE_GROUPS } from "../../src/metrics/device-metrics.ts";
import { RecentWarnings } from "../../src/status/recent-warnings.ts";
import { StatusProvider, type StatusDeviceSource } from "../../src/status/status-provider.ts";
import { ChromiumPage } from "./chromium-cdp.ts";
import { startSimStatusServer } from "./sim-status-server.ts";

const SCREENSHOT = join(tmpdir(), "tcmu-appliance-status-page.png");

let page: ChromiumPage;
beforeAll(async () => {
  page = await ChromiumPage.launch(1280, 800);
});
afterAll(() => page?.close());

interface Observation {
  lastSeq: number;
  rows: { name: string; state: string; iops: number; commands: number; spark: string }[];
  charts: Record<string, { paths: string[]; top: string; legend: string[] }>;
  warnings: string[];
  applyMs: number;
}

/** What a reader of the page sees, read from the stable hooks (data-device, data-field, chart ids). */
function observe(): Promise<Observation> {
  return page.evaluate<Observation>(`(() => {
    const field = (row, name) => row.querySelector('[data-field="' + name + '"]');
    const charts = {};
    for (const svg of document.querySelectorAll('svg[id^="chart-"]')) {
      const name = svg.id.slice(6);
      charts[name] = {
        paths: [...svg.querySelectorAll("path")].map((path) => path.getAttribute("d") || ""),
        top: document.getElementById("ymax-" + name).textContent,
        legend: [...document.querySelectorAll("#legend-" + name + " [data-series]")].map((item) => item.textContent),
      };
    }
    return {
      lastSeq: Number(document.documentElement.dataset.lastSeq),
      rows: [...document.querySelectorAll("tr[data-device]")].map((row) => ({
        name: row.dataset.device,
        state: field(row, "state").dataset.value,
        iops: Number(field(row, "iops").dataset.value),
        commands: Number(field(row, "commands").dataset.value),
        spark: field(row, "spark").getAttribute("d"),
      })),
      charts,
      warnings: [...document.querySelectorAll("#warnings li")].map((item) => item.textContent),
      applyMs: Number(document.documentElement.dataset.applyMs),
    };
  })()`);
}

test("the page shows the devices under load, its numbers and charts move, a broken ring shows; screenshot saved", async () => {
  // 50 samples of 200 ms: the charts fill in 10 s rather than serve's five minutes.
  const sim = await startSimStatusServer({ devices: 4, intervalMs: 200, capacity: 50 });
  try {
    await page.navigate(`${sim.baseUrl}/`);
    await page.waitFor("Number(document.documentElement.dataset.updates) >= 2 && document.querySelectorAll('tr[data-device]').length === 4", 10_000);
    const first = await observe();
    await page.waitFor(`Number(document.documentElement.dataset.lastSeq) >= ${first.lastSeq + 5}`, 10_000);
    const second = await observe();
    expect(second.rows.map((row) => row.name)).toEqual(sim.names);
    for (const [index, row] of second.rows.entries()) {
      expect(row.state).toBe("served");
      expect(row.iops).toBeGreaterThan(0);
      expect(row.commands).toBeGreaterThan(first.rows[index]!.commands);
      expect(row.spark).toStartWith("M");
      expect(row.spark).not.toBe(first.rows[index]!.spark);
    }
    for (const name of ["iops", "throughput", "latency", "cpu", "rss"]) {
      const chart = second.charts[name]!;
      expect(chart.paths.some((path) => path.includes("L"))).toBe(true);
      expect(chart.paths).not.toEqual(first.charts[name]!.paths);
      expect(chart.top).not.toBe("0");
    }
    expect(second.charts.iops!.legend[0]).toMatch(/^read \d/);

    await sim.breakRing("disk1");
    await page.waitFor(`document.querySelector('tr[data-device="disk1"] [data-field="state"]').dataset.value === "broken"`, 10_000);
    await page.waitFor(`document.querySelector("#warnings li.error")`, 10_000);
    const broken = await observe();
    expect(broken.warnings.some((line) => line.includes("the ring is corrupt"))).toBe(true);
    // Let the charts fill before the picture.
    await page.waitFor(`Number(document.documentElement.dataset.lastSeq) >= 49`, 15_000);
    writeFileSync(SCREENSHOT, await page.screenshotPng());
    expect(page.exceptions).toEqual([]);
  } finally {
    await sim.close();
  }
}, 30_000);

/** Counters that move like a busy device's, without worker threads: 64 of them cost nothing. */
function syntheticDevice(index: number): StatusDeviceSource & { step(): void } {
  const metrics = new DeviceMetrics();
  const reads = OPCODE_GROUPS.indexOf("read");
  const writes = OPCODE_GROUPS.indexOf("write");
  let ticks = 0;
  return {
    name: `vol${String(index).padStart(2, "0")}`,
    uio: `uio${index}`,
    backstoreKind: index % 3 === 0 ? "file" : "ram",
    backstoreDescription: index % 3 === 0 ? `/srv/images/vol${index}.img (io_uring)` : "ram",
    sizeBytes: (index + 1) * 1024 ** 3,
    blockSizeBytes: index % 2 === 0 ? 512 : 4096,
    metrics,
    engine: { inFlightCount: index % 5, broken: false },
    unit: { stopped: false, writeCacheEnabled: index % 2 === 0 },
    detaching: false,
    step() {
      ticks += 1;
      const load = 1000 + 500 * Math.sin(ticks / 7 + index);
      metrics.commandsByGroup[reads]! += load * 0.6;
      metrics.commandsByGroup[writes]! += load * 0.4;
      metrics.bytesRead += load * 0.6 * 4096;
      metrics.bytesWritten += load * 0.4 * 65536;
      metrics.latencyBuckets[2 + (ticks % 4)]! += load / 16;
      metrics.latencyBuckets[LATENCY_BUCKETS_SECONDS.length - 3]! += 1;
    },
  };
}

test("64 devices: every row is there, updates happen in place and stay cheap; the JSON stays small after the first poll", async () => {
  const devices = Array.from({ length: 64 }, (_, index) => syntheticDevice(index));
  const intervalMs = 250;
  const provider = new StatusProvider({ devices: () => devices, serve: () => ({ stopping: false, netlink: true }), warnings: new RecentWarnings(), startedAtMs: Date.now(), intervalMs });
  // Five minutes of history at once, then live samples.
  const startMs = Date.now() - 301 * intervalMs;
  for (let tick = 0; tick <= 300; tick += 1) {
    for (const device of devices) device.step();
    provider.tick(startMs + tick * intervalMs);
  }
  const timer = setInterval(() => {
    for (const device of devices) device.step();
    provider.tick();
  }, intervalMs);
  const server = startMetricsServer({ hostname: "127.0.0.1", port: 0 }, { metricsText: () => "", health: () => ({ healthy: true }), status: (query) => provider.report(query) });
  try {
    const base = `http://127.0.0.1:${server.port}`;
    const fullBytes = (await (await fetch(`${base}/api/status?window=300`)).arrayBuffer()).byteLength;
    const pollBytes = (await (await fetch(`${base}/api/status?window=3`)).arrayBuffer()).byteLength;
    expect(fullBytes).toBeLessThan(2_000_000);
    expect(pollBytes).toBeLessThan(100_000);
    await page.navigate(`${base}/`);
    await page.waitFor("document.querySelectorAll('tr[data-device]').length === 64", 10_000);
    // The same row elements later: updates change them, they are never rebuilt.
    await page.evaluate("document.querySelectorAll('tr[data-device]').forEach((row) => (row.marked = true))");
    const first = await observe();
    let slowestMs = 0;
    for (let update = 0; update < 6; update += 1) {
      const seq = (await observe()).lastSeq;
      await page.waitFor(`Number(document.documentElement.dataset.lastSeq) > ${seq}`, 5_000);
      slowestMs = Math.max(slowestMs, (await observe()).applyMs);
    }
    const last = await observe();
    expect(last.rows.length).toBe(64);
    expect(await page.evaluate<boolean>("[...document.querySelectorAll('tr[data-device]')].every((row) => row.marked === true)")).toBe(true);
    expect(last.rows.filter((row, index) => row.commands > first.rows[index]!.commands).length).toBe(64);
    // A full sparkline: five minutes of points in every row.
    expect(last.rows.every((row) => (row.spark.match(/[ML]/g) ?? []).length >= 290)).toBe(true);
    expect(slowestMs).toBeLessThan(100);
    expect(page.exceptions).toEqual([]);
  } finally {
    clearInterval(timer);
    await server.stop(true);
  }
}, 30_000);
