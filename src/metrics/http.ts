// The observability endpoint: GET /metrics (Prometheus text) and GET /healthz (JSON; 503 when a
// device's ring is broken); with serve --fault-injection (tests only) also POST /fault-injection.
// Bound to 127.0.0.1 by default: the numbers name devices and sizes, which is nobody else's
// business unless the admin says so.
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
  /**
   * serve --fault-injection only (tests): POST /fault-injection/<device>?kind=data-path|worker.
   * Resolves false when no device has that name.
   */
  injectFault?(deviceName: string, kind: "data-path" | "worker"): Promise<boolean>;
}

const FAULT_PATH = "/fault-injection/";

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
      return new Response("not found: try /metrics or /healthz\n", { status: 404 });
    },
  });
}
