// The observability endpoint: GET /metrics (Prometheus text) and GET /healthz (JSON; 503 when a
// device's ring is broken). Bound to 127.0.0.1 by default: the numbers name devices and sizes,
// which is nobody else's business unless the admin says so.
import type { Server } from "bun";

export const DEFAULT_METRICS_LISTEN = "127.0.0.1:9540";
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export interface HealthReport {
  healthy: boolean;
  [key: string]: unknown;
}

export interface MetricsSource {
  metricsText(): string;
  health(): HealthReport;
}

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
    fetch(request) {
      const path = new URL(request.url).pathname;
      if (request.method !== "GET" && request.method !== "HEAD") return new Response("method not allowed\n", { status: 405 });
      if (path === "/metrics") return new Response(source.metricsText(), { headers: { "content-type": PROMETHEUS_CONTENT_TYPE } });
      if (path === "/healthz") {
        const report = source.health();
        return Response.json(report, { status: report.healthy ? 200 : 503 });
      }
      return new Response("not found: try /metrics or /healthz\n", { status: 404 });
    },
  });
}
