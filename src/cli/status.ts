// `tcmu-appliance status [--json]`: what a running serve reports on GET /api/status, printed
// once: rates, state and details per device, process footprint, latest warnings. `top` is the
// same every second. Both only read the metrics listener; neither needs root.
import { defineCommand } from "citty";
import { DEFAULT_METRICS_LISTEN } from "../metrics/http.ts";
import { renderStatus } from "../status/render-table.ts";
import { fetchStatus, ListenFlagSchema, StatusUnavailableError } from "../status/status-client.ts";
import { DEFAULT_STATUS_WINDOW_SECONDS } from "../status/status-schema.ts";

export const STATUS_CLIENT_ARGS = {
  "metrics-listen": { type: "string", description: `Where serve's metrics listener is, ADDR:PORT (default ${DEFAULT_METRICS_LISTEN})` },
} as const;

/** The --metrics-listen value; a bad one exits 2 naming the flag, as serve's flags do. */
export function listenFrom(command: string, args: { "metrics-listen"?: unknown }): string {
  const parsed = ListenFlagSchema.safeParse(args["metrics-listen"] ?? DEFAULT_METRICS_LISTEN);
  if (parsed.success) return parsed.data;
  console.error(`${command}: --metrics-listen: ${parsed.error.issues[0]!.message}`);
  process.exit(2);
}

/** A serve that does not answer is one line on stderr and exit 1; anything else is a bug and throws. */
export function exitUnavailable(command: string, error: unknown): never {
  if (!(error instanceof StatusUnavailableError)) throw error;
  console.error(`${command}: ${error.message}`);
  process.exit(1);
}

export const statusCommand = defineCommand({
  meta: { name: "status", description: "Show what a running serve reports: per-device rates, latency, state; process; warnings" },
  args: {
    json: { type: "boolean", description: `Print the /api/status JSON (with ${DEFAULT_STATUS_WINDOW_SECONDS} s of per-second series)` },
    ...STATUS_CLIENT_ARGS,
  },
  async run({ args }) {
    const listen = listenFrom("status", args);
    const json = args.json === true;
    try {
      const fetched = await fetchStatus(listen, { windowSeconds: json ? DEFAULT_STATUS_WINDOW_SECONDS : 0 });
      process.stdout.write(json ? `${JSON.stringify(fetched.json, null, 2)}\n` : renderStatus(fetched.report));
    } catch (error) {
      exitUnavailable("status", error);
    }
  },
});
