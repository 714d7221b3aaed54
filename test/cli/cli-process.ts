// Runs the CLI as a subprocess without blocking this process's event loop: the tests serve
// the /api/status it reads from this very process.
import type { Subprocess } from "bun";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function spawnCli(...args: string[]): Subprocess<"ignore", "pipe", "pipe"> {
  return Bun.spawn([process.execPath, MAIN, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
}

export async function runCli(...args: string[]): Promise<CliResult> {
  const child = spawnCli(...args);
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr };
}

/** A loopback port nobody listens on (just closed). */
export async function closedPort(): Promise<number> {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
  const port = server.port!;
  await server.stop(true);
  return port;
}
