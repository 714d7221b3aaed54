// The observability endpoint: GET /metrics (Prometheus text) and GET /healthz (JSON; 503 when a
// device's ring is broken); given a status source also GET /api/status (JSON, see
// src/status/status-schema.ts) and the status page at /; with serve --fault-injection (tests
// only) also POST /fault-injection.
// Bound to 127.0.0.1 by default: the numbers name devices and sizes, which is nobody else's
// business unless the admin says so.
import type { Server } from "bun";
import { STATUS_PAGE_HTML } from "../status/status-page.ts";
import { DEFAULT_STATUS_WINDOW_SECONDS, StatusQuerySchema, type StatusQuery } from "../status/status-schema.ts";

export const DEFAULT_METRICS_LISTEN = "127.0.0.1:9540";
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export interface HealthReport {
  healthy: boolean;
  [key: string]: unknown;
}

export interface MetricsSource {
  metricsText(): string;
  health(): HealthReport;
  /** GET /api/status?window=SECONDS; absent: neither /api/status nor the page at / is served. */
  status?(query: StatusQuery): unknown;
  /**
   * serve --fault-injection only (tests): POST /fault-injection/<device>?kind=data-path|worker.
   * Resolves false when no device has that name.
   */
  injectFault?(deviceName: string, kind: "data-path" | "worker"): Promise<boolean>;
}

const FAULT_PATH = "/fault-injection/";

/** The page fetches /api/status from where it came from and nothing else. */
const STATUS_PAGE_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "content-security-policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
  "cache-control": "no-store",
};

export interface ListenAddress {
  hostname: string;
  port: number;
}

/** "127.0.0.1:9540" or "[::1]:9540" into its parts (validated earlier by the config schema). */
export function parseListen(text: string): ListenAddress {
  const colon = text.lastIndexOf(":");
  const host = text.slice(0, colon);
  return { hostname: host.startsWith("[") ? host.slice(1, -1) : host, port: Number(text.slice(colon + 1)) };
}

export function startMetricsServer(address: ListenAddress, source: MetricsSource): Server<undefined> {
  return Bun.serve({
    hostname: address.hostname,
    port: address.port,
    async fetch(request) {
      const url = new URL(request.url);
      const path = url.pathname;
      if (request.method === "POST" && source.injectFault !== undefined && path.startsWith(FAULT_PATH)) {
        const kind = url.searchParams.get("kind") ?? "data-path";
        if (kind !== "data-path" && kind !== "worker") return new Response("kind must be data-path or worker\n", { status: 400 });
        const found = await source.injectFault(decodeURIComponent(path.slice(FAULT_PATH.length)), kind);
        return found ? new Response("injected\n", { status: 202 }) : new Response("no such device\n", { status: 404 });
      }
      if (request.method !== "GET" && request.method !== "HEAD") return new Response("method not allowed\n", { status: 405 });
      if (path === "/metrics") return new Response(source.metricsText(), { headers: { "content-type": PROMETHEUS_CONTENT_TYPE } });
      if (path === "/healthz") {
        const report = source.health();
        return Response.json(report, { status: report.healthy ? 200 : 503 });
      }
      if (source.status !== undefined) {
        if (path === "/api/status") {
          const query = StatusQuerySchema.safeParse({ windowSeconds: url.searchParams.get("window") ?? DEFAULT_STATUS_WINDOW_SECONDS });
          if (!query.success) return new Response(`window: ${query.error.issues[0]!.message}\n`, { status: 400 });
          return Response.json(source.status(query.data), { headers: { "cache-control": "no-store" } });
        }
        if (path === "/") return new Response(STATUS_PAGE_HTML, { headers: STATUS_PAGE_HEADERS });
      }
      return new Response(`not found: try /metrics or /healthz${source.status === undefined ? "" : ", /api/status or /"}\n`, { status: 404 });
    },
  });
}
