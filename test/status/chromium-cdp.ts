// Headless Debian chromium driven over the Chrome DevTools Protocol with nothing but Bun's
// WebSocket: launch on --remote-debugging-port=0, read the DevTools URL chromium prints on
// stderr, open one page target in a flattened session, evaluate and screenshot there.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

export const CHROMIUM = "/usr/bin/chromium";
const LAUNCH_TIMEOUT_MS = 15_000;
const CALL_TIMEOUT_MS = 10_000;

interface Pending {
  resolve: (result: Record<string, unknown>) => void;
  reject: (error: Error) => void;
}

export class ChromiumPage {
  readonly exceptions: string[] = [];
  readonly #process: Subprocess;
  readonly #socket: WebSocket;
  readonly #profileDir: string;
  readonly #pending = new Map<number, Pending>();
  #sessionId: string | undefined;
  #nextId = 1;

  private constructor(process: Subprocess, socket: WebSocket, profileDir: string) {
    this.#process = process;
    this.#socket = socket;
    this.#profileDir = profileDir;
    socket.addEventListener("message", (event) => this.#onMessage(String(event.data)));
  }

  /** Chromium with one blank page of `width` x `height`; fails loudly when chromium is missing. */
  static async launch(width: number, height: number): Promise<ChromiumPage> {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: the status page test needs Debian's chromium (apt-get install chromium)`);
    const profileDir = mkdtempSync(join(tmpdir(), "status-page-chromium-"));
    const child = Bun.spawn(
      [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--disable-background-networking",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        "--mute-audio",
        `--user-data-dir=${profileDir}`,
        "--remote-debugging-port=0",
        `--window-size=${width},${height}`,
        "about:blank",
      ],
      { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
    );
    try {
      const socket = new WebSocket(await devToolsUrl(child));
      await new Promise<void>((resolve, reject) => {
        socket.addEventListener("open", () => resolve(), { once: true });
        socket.addEventListener("error", () => reject(new Error("could not connect to chromium's DevTools socket")), { once: true });
      });
      const page = new ChromiumPage(child, socket, profileDir);
      const { targetId } = await page.send("Target.createTarget", { url: "about:blank" });
      const { sessionId } = await page.send("Target.attachToTarget", { targetId, flatten: true });
      page.#sessionId = String(sessionId);
      await page.send("Emulation.setDeviceMetricsOverride", { width, height, deviceScaleFactor: 1, mobile: false });
      await page.send("Runtime.enable");
      await page.send("Page.enable");
      return page;
    } catch (error) {
      child.kill();
      rmSync(profileDir, { recursive: true, force: true });
      throw error;
    }
  }

  /** One CDP call, on the page's session once there is one. */
  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${method}: no answer from chromium in ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      this.#pending.set(id, {
        resolve: (result) => (clearTimeout(timer), resolve(result)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      });
      this.#socket.send(JSON.stringify({ id, method, params, ...(this.#sessionId === undefined ? {} : { sessionId: this.#sessionId }) }));
    });
  }

  async navigate(url: string): Promise<void> {
    await this.send("Page.navigate", { url });
    await this.waitFor("document.readyState === 'complete'", 10_000);
  }

  /** The value of a JavaScript expression in the page (JSON-serialisable). */
  async evaluate<T>(expression: string): Promise<T> {
    const reply = await this.send("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
    if (reply.exceptionDetails !== undefined) throw new Error(`${expression}: ${JSON.stringify(reply.exceptionDetails)}`);
    return (reply.result as { value: T }).value;
  }

  /** Polls until `expression` is truthy; fails after `timeoutMs` naming it. */
  async waitFor(expression: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.evaluate<boolean>(`Boolean(${expression})`))) {
      if (Date.now() > deadline) throw new Error(`the page did not reach ${expression} in ${timeoutMs} ms`);
      await Bun.sleep(50);
    }
  }

  async screenshotPng(): Promise<Buffer> {
    const { data } = await this.send("Page.captureScreenshot", { format: "png" });
    return Buffer.from(String(data), "base64");
  }

  async close(): Promise<void> {
    try {
      await Promise.race([this.send("Browser.close"), Bun.sleep(2000)]);
    } catch {
      // Chromium may drop the socket before it answers Browser.close.
    }
    this.#socket.close();
    this.#process.kill();
    await this.#process.exited;
    rmSync(this.#profileDir, { recursive: true, force: true });
  }

  #onMessage(text: string): void {
    const message = JSON.parse(text) as { id?: number; result?: Record<string, unknown>; error?: { message: string }; method?: string; params?: Record<string, unknown> };
    if (message.method === "Runtime.exceptionThrown") {
      const details = message.params?.exceptionDetails as { text?: string; exception?: { description?: string } } | undefined;
      this.exceptions.push(details?.exception?.description ?? details?.text ?? "exception");
    }
    if (message.id === undefined) return;
    const pending = this.#pending.get(message.id);
    if (pending === undefined) return;
    this.#pending.delete(message.id);
    if (message.error !== undefined) pending.reject(new Error(`chromium: ${message.error.message}`));
    else pending.resolve(message.result ?? {});
  }
}

/** The ws:// URL from "DevTools listening on ws://…" on chromium's stderr. */
async function devToolsUrl(child: Subprocess<"ignore", "ignore", "pipe">): Promise<string> {
  const reader = child.stderr.getReader();
  const decoder = new TextDecoder();
  let seen = "";
  const timeout = Bun.sleep(LAUNCH_TIMEOUT_MS).then(() => undefined);
  while (true) {
    const chunk = await Promise.race([reader.read(), timeout]);
    if (chunk === undefined) throw new Error(`chromium printed no DevTools URL in ${LAUNCH_TIMEOUT_MS} ms; its stderr:\n${seen.slice(-2000)}`);
    if (chunk.done) throw new Error(`chromium exited before it listened (exit ${await child.exited}); its stderr:\n${seen.slice(-2000)}`);
    seen += decoder.decode(chunk.value, { stream: true });
    const match = /DevTools listening on (ws:\/\/\S+)/.exec(seen);
    if (match !== null) {
      // Keep draining stderr, or chromium blocks on a full pipe once it logs enough.
      void (async () => {
        while (!(await reader.read()).done);
      })().catch(() => {});
      return match[1]!;
    }
  }
}
