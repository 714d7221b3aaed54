// The CLI's side of GET /api/status (`status`, `top`): the --metrics-listen flag, the request,
// and failures turned into one line that says what to do, never a stack trace.
import { z } from "zod";
import { parseListen } from "../metrics/http.ts";
import { StatusReportSchema, type StatusReport } from "./status-schema.ts";

/** How long a running serve gets to answer; it answers from memory, so this is generous. */
export const STATUS_FETCH_TIMEOUT_MS = 3000;

/** The --metrics-listen value of status/top: where serve's metrics listener is (never "off" here). */
export const ListenFlagSchema = z.string().regex(/^([^:\s[\]]+|\[[0-9a-fA-F:.]+\]):\d{1,5}$/, "an address:port such as 127.0.0.1:9540");

/** A serve did not answer, or answered with something else than a status report. */
export class StatusUnavailableError extends Error {
  override readonly name = "StatusUnavailableError";
}

export function statusUrl(listen: string, windowSeconds: number): string {
  const { hostname, port } = parseListen(listen);
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return `http://${host}:${port}/api/status?window=${windowSeconds}`;
}

export interface FetchedStatus {
  report: StatusReport;
  /** The JSON as serve sent it: `status --json` prints this, fields this CLI does not know included. */
  json: unknown;
}

export async function fetchStatus(listen: string, options: { windowSeconds: number; signal?: AbortSignal }): Promise<FetchedStatus> {
  const url = statusUrl(listen, options.windowSeconds);
  const timeout = AbortSignal.timeout(STATUS_FETCH_TIMEOUT_MS);
  let response: Response;
  try {
    response = await fetch(url, { signal: options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]) });
  } catch (error) {
    if (options.signal?.aborted === true) throw error;
    const reason = timeout.aborted ? `no answer within ${STATUS_FETCH_TIMEOUT_MS / 1000} s` : connectionProblem(error);
    throw new StatusUnavailableError(`no serve answers on ${listen} (${reason}); is tcmu-appliance serve running with --metrics-listen ${listen}?`);
  }
  if (response.status === 404) throw new StatusUnavailableError(`${url}: 404; the serve there has no /api/status (an older version?)`);
  if (!response.ok) throw new StatusUnavailableError(`${url}: HTTP ${response.status} ${(await response.text()).trim()}`);
  let json: unknown;
  try {
    json = await response.json();
  } catch {
    throw new StatusUnavailableError(`${url}: the answer is not JSON`);
  }
  const parsed = StatusReportSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new StatusUnavailableError(`${url}: not a status report this version understands (${issue.path.join(".") || "(root)"}: ${issue.message})`);
  }
  return { report: parsed.data, json };
}

function connectionProblem(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  if (code === "ConnectionRefused" || code === "ECONNREFUSED") return "connection refused";
  return error instanceof Error ? error.message : String(error);
}
