// A status report as terminal text, shared by `top` (one frame a second) and `status` (once,
// with the devices' details): iostat -x style, one line per device, numbers right-aligned.
import { formatBytes } from "../cli/format.ts";
import type { DeviceStatus, Rates, StatusReport, StatusWarning } from "./status-schema.ts";

const MB = 1e6;
/** Warnings shown under the table; `status --json` has them all. */
const WARNINGS_SHOWN = 5;

type Align = "left" | "right";
interface Column<Row> {
  title: string;
  align: Align;
  cell: (row: Row) => string;
}

/** Columns padded to their widest cell, two spaces apart, no trailing blanks. */
export function formatColumns<Row>(columns: readonly Column<Row>[], rows: readonly Row[]): string[] {
  const cells = [columns.map((column) => column.title), ...rows.map((row) => columns.map((column) => column.cell(row)))];
  const widths = columns.map((_, index) => Math.max(...cells.map((line) => line[index]!.length)));
  return cells.map((line) =>
    line
      .map((cell, index) => (columns[index]!.align === "right" ? cell.padStart(widths[index]!) : cell.padEnd(widths[index]!)))
      .join("  ")
      .trimEnd(),
  );
}

const perSecond = (value: number) => value.toFixed(1);
const megabytes = (bytes: number) => (bytes / MB).toFixed(2);
const milliseconds = (value: number | null) => (value === null ? "-" : value.toFixed(3));

interface RateRow {
  name: string;
  rates: Rates;
  inFlight: string;
  state: string;
}

const RATE_COLUMNS: readonly Column<RateRow>[] = [
  { title: "DEVICE", align: "left", cell: (row) => row.name },
  { title: "r/s", align: "right", cell: (row) => perSecond(row.rates.readIops) },
  { title: "w/s", align: "right", cell: (row) => perSecond(row.rates.writeIops) },
  { title: "rMB/s", align: "right", cell: (row) => megabytes(row.rates.readBytesPerSecond) },
  { title: "wMB/s", align: "right", cell: (row) => megabytes(row.rates.writtenBytesPerSecond) },
  { title: "p50_ms", align: "right", cell: (row) => milliseconds(row.rates.latencyP50Ms) },
  { title: "p99_ms", align: "right", cell: (row) => milliseconds(row.rates.latencyP99Ms) },
  { title: "inflight", align: "right", cell: (row) => row.inFlight },
  { title: "STATE", align: "left", cell: (row) => row.state },
];

const DETAIL_COLUMNS: readonly Column<DeviceStatus>[] = [
  { title: "DEVICE", align: "left", cell: (device) => device.name },
  { title: "UIO", align: "left", cell: (device) => device.uio },
  { title: "BACKSTORE", align: "left", cell: (device) => device.backstore.description },
  { title: "SIZE", align: "right", cell: (device) => formatBytes(device.sizeBytes) },
  { title: "BLOCK", align: "right", cell: (device) => String(device.blockSizeBytes) },
  { title: "COMMANDS", align: "right", cell: (device) => String(device.totals.commands) },
  { title: "READ", align: "right", cell: (device) => formatBytes(device.totals.readBytes) },
  { title: "WRITTEN", align: "right", cell: (device) => formatBytes(device.totals.writtenBytes) },
  { title: "ERRORS", align: "right", cell: (device) => String(device.totals.errors) },
  { title: "EXPORTS", align: "left", cell: (device) => (device.exports.length === 0 ? "-" : device.exports.join("; ")) },
];

export function formatDuration(seconds: number): string {
  const whole = Math.floor(seconds);
  const days = Math.floor(whole / 86_400);
  const hours = Math.floor((whole % 86_400) / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  if (days > 0) return `${days}d${hours}h`;
  if (hours > 0) return `${hours}h${String(minutes).padStart(2, "0")}m`;
  return minutes > 0 ? `${minutes}m${String(whole % 60).padStart(2, "0")}s` : `${whole}s`;
}

function headline(report: StatusReport): string {
  const serve = report.serve;
  const parts = [
    `serve pid ${report.process.pid}`,
    `up ${formatDuration(serve.uptimeSeconds)}`,
    `${report.devices.length} device(s)`,
    `rss ${formatBytes(report.process.rssBytes)}`,
    `cpu ${report.process.cpuPercent.toFixed(1)}%`,
    `netlink ${serve.netlink ? "on" : "off"}`,
  ];
  if (serve.stopping) parts.push("STOPPING");
  return `${parts.join(", ")}    ${report.generatedAt.slice(0, 19).replace("T", " ")}Z`;
}

function warningLine(warning: StatusWarning): string {
  return `  ${warning.time.slice(11, 19)} ${warning.level} ${warning.source}: ${warning.message}`;
}

function render(report: StatusReport, detail: boolean): string {
  const rows: RateRow[] = report.devices.map((device) => ({ name: device.name, rates: device.rates, inFlight: String(device.inFlight), state: device.state }));
  if (rows.length > 1) {
    const inFlight = report.devices.reduce((sum, device) => sum + device.inFlight, 0);
    rows.push({ name: "(all)", rates: report.aggregate.rates, inFlight: String(inFlight), state: "" });
  }
  const lines = [headline(report), "", ...formatColumns(RATE_COLUMNS, rows)];
  if (report.devices.length === 0) lines.push("(no devices served)");
  else if (detail) lines.push("", ...formatColumns(DETAIL_COLUMNS, report.devices));
  const warnings = report.warnings.slice(-WARNINGS_SHOWN);
  if (warnings.length > 0) {
    const shown = warnings.length === report.warnings.length ? "" : `latest ${warnings.length} of `;
    lines.push("", `warnings (${shown}${report.warnings.length}):`, ...warnings.map(warningLine));
  }
  return `${lines.join("\n")}\n`;
}

/** `top`'s frame: the headline, the rates per device and in total, the latest warnings. */
export function renderTop(report: StatusReport): string {
  return render(report, false);
}

/** `status`: top's frame with what each device is (backstore, size, totals, exports). */
export function renderStatus(report: StatusReport): string {
  return render(report, true);
}
