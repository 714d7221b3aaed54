// `tcmu-appliance top` piped (no terminal): one frame a second whose numbers move, ended
// cleanly by SIGINT; and its exit when no serve answers.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startSimStatusServer, type SimStatusServer } from "../status/sim-status-server.ts";
import { closedPort, runCli, spawnCli } from "./cli-process.ts";

let sim: SimStatusServer;
beforeAll(async () => {
  sim = await startSimStatusServer({ devices: 2, intervalMs: 200 });
  await sim.breakRing("disk1");
});
afterAll(() => sim.close());

test("top prints a frame a second without terminal codes, its numbers move, and SIGINT ends it with exit 0", async () => {
  const child = spawnCli("top", "--metrics-listen", sim.listen);
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let output = "";
  const deadline = Date.now() + 10_000;
  while ((output.match(/^DEVICE /gm) ?? []).length < 3 && Date.now() < deadline) {
    const chunk = await reader.read();
    if (chunk.done) break;
    output += decoder.decode(chunk.value, { stream: true });
  }
  child.kill("SIGINT");
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) output += decoder.decode(chunk.value, { stream: true });
  expect(await child.exited).toBe(0);
  expect(await new Response(child.stderr).text()).toBe("");
  expect(output).not.toContain("\x1b");
  const frames = output.split(/^(?=serve pid )/m).filter((frame) => frame.includes("DEVICE "));
  expect(frames.length).toBeGreaterThanOrEqual(3);
  const rateOf = (frame: string) => frame.split("\n").find((line) => line.startsWith("disk0 "))!.split(/\s+/).slice(1, 5).join(" ");
  expect(frames.every((frame) => /^disk1 .* broken$/m.test(frame))).toBe(true);
  expect(new Set(frames.map(rateOf)).size).toBeGreaterThan(1);
});

test("top with no serve listening is one line on stderr and exit 1", async () => {
  const port = await closedPort();
  const { code, stderr } = await runCli("top", "--metrics-listen", `127.0.0.1:${port}`);
  expect(code).toBe(1);
  expect(stderr).toBe(`top: no serve answers on 127.0.0.1:${port} (connection refused); is tcmu-appliance serve running with --metrics-listen 127.0.0.1:${port}?\n`);
});
