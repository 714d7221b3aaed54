// `tcmu-appliance top`: `status` every second, like `iostat -x 1`: r/s, w/s, rMB/s, wMB/s,
// await p50/p99, in flight and state per device. On a terminal it redraws one screen (the
// alternate screen, given back on exit); piped, it prints one frame a second. SIGINT or
// SIGTERM ends it with exit 0; a serve that stops answering ends it with exit 1.
import { defineCommand } from "citty";
import { renderTop } from "../status/render-table.ts";
import { fetchStatus } from "../status/status-client.ts";
import { exitUnavailable, listenFrom, STATUS_CLIENT_ARGS } from "./status.ts";

export const TOP_INTERVAL_MS = 1000;

const ENTER_SCREEN = "\x1b[?1049h\x1b[?25l";
const LEAVE_SCREEN = "\x1b[?25h\x1b[?1049l";
/** Overwrites the previous frame in place (each line cleared to its end, then the rest): no flicker. */
const redraw = (frame: string) => `\x1b[H${frame.replaceAll("\n", "\x1b[K\n")}\x1b[J`;

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(finish, ms);
    signal.addEventListener("abort", finish, { once: true });
    function finish() {
      clearTimeout(timer);
      signal.removeEventListener("abort", finish);
      resolve();
    }
  });
}

export async function runTop(listen: string, output: NodeJS.WriteStream = process.stdout): Promise<void> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const terminal = output.isTTY === true;
  let entered = false;
  try {
    while (!stop.signal.aborted) {
      const startedMs = Date.now();
      let frame: string;
      try {
        frame = renderTop((await fetchStatus(listen, { windowSeconds: 0, signal: stop.signal })).report);
      } catch (error) {
        if (stop.signal.aborted) break;
        if (entered) output.write(LEAVE_SCREEN);
        entered = false;
        exitUnavailable("top", error);
      }
      if (terminal && !entered) {
        output.write(ENTER_SCREEN);
        entered = true;
      }
      output.write(terminal ? redraw(frame) : `${frame}\n`);
      await pause(TOP_INTERVAL_MS - (Date.now() - startedMs), stop.signal);
    }
  } finally {
    if (entered) output.write(LEAVE_SCREEN);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

export const topCommand = defineCommand({
  meta: { name: "top", description: "Per-device rates, latency and state of a running serve, every second (like iostat -x 1)" },
  args: { ...STATUS_CLIENT_ARGS },
  async run({ args }) {
    await runTop(listenFrom("top", args));
  },
});
