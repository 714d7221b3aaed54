// serve's ConfigfsIo: every operation runs synchronously in a worker thread of its own pool.
//
// Why not Bun's fs.promises: its thread pool has as many threads as cores (2 here), shared with
// everything else async. serve's configfs operations can block until serve itself acts: an
// `enable` until our ADDED reply, a tcm_loop LUN link until we answered the new disk's probe,
// a read under a device with a pending rmdir until we answered REMOVED. Two of those at once
// would stall every async file operation in the process, including the ones needed to answer.
// This pool grows a thread whenever all are busy (up to CONFIGFS_THREADS_MAX), so a blocked
// operation never holds up the next one, and each thread ends once it has had no work for
// CONFIGFS_IDLE_RETIRE_MS: a JavaScript thread costs ~2.5 MB of memory even idle, and an idle
// serve reads configfs only about once a minute (device-set.ts), so it keeps none. Starting
// one again costs a few milliseconds.
import { CONFIGFS_WORKER_URL } from "../worker-urls.ts";
import { ConfigfsError, ConfigfsIo } from "./io.ts";
import type { ConfigfsOperation, ConfigfsRequest, ConfigfsResponse } from "./worker-protocol.ts";

/** Threads at most; more concurrent configfs operations than this wait for a free one. */
export const CONFIGFS_THREADS_MAX = 16;
/** A thread ends once it has had no work for this long. */
export const CONFIGFS_IDLE_RETIRE_MS = 2000;
/** An operation still running after this long is reported (it waits on the kernel, or on us). */
export const CONFIGFS_SLOW_MS = 10_000;

interface PendingRequest {
  resolve: (response: ConfigfsResponse) => void;
  thread: Worker;
}

export class ThreadConfigfsIo extends ConfigfsIo {
  readonly #onSlow: (description: string) => void;
  /** Least recently used first: work takes the last one, so the first ones are those to retire. */
  readonly #idle: { thread: Worker; sinceMs: number }[] = [];
  readonly #all: Worker[] = [];
  readonly #pending = new Map<number, PendingRequest>();
  readonly #queue: (() => void)[] = [];
  #nextId = 1;
  #retireTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(onSlow: (description: string) => void = () => {}) {
    super();
    this.#onSlow = onSlow;
  }

  async #call(operation: ConfigfsOperation, path: string, argument?: string): Promise<ConfigfsResponse> {
    const thread = await this.#takeThread();
    const id = this.#nextId++;
    const slow = setTimeout(() => this.#onSlow(`configfs ${operation} ${path} still waiting after ${CONFIGFS_SLOW_MS / 1000} s`), CONFIGFS_SLOW_MS);
    slow.unref();
    const response = await new Promise<ConfigfsResponse>((resolve) => {
      this.#pending.set(id, { resolve, thread });
      const request: ConfigfsRequest = argument === undefined ? { id, operation, path } : { id, operation, path, argument };
      thread.postMessage(request);
    });
    clearTimeout(slow);
    return response;
  }

  async #takeThread(): Promise<Worker> {
    const idle = this.#idle.pop();
    if (idle !== undefined) return idle.thread;
    if (this.#all.length < CONFIGFS_THREADS_MAX) return this.#spawn();
    await new Promise<void>((resolve) => this.#queue.push(resolve));
    return this.#takeThread();
  }

  #spawn(): Worker {
    const thread = new Worker(CONFIGFS_WORKER_URL);
    thread.addEventListener("error", (event) => this.#onSlow(`configfs thread failed: ${event.message}`));
    thread.addEventListener("message", (event: MessageEvent<ConfigfsResponse>) => {
      const pending = this.#pending.get(event.data.id);
      if (pending === undefined) return;
      this.#pending.delete(event.data.id);
      this.#idle.push({ thread, sinceMs: performance.now() });
      this.#queue.shift()?.();
      this.#scheduleRetire(CONFIGFS_IDLE_RETIRE_MS);
      pending.resolve(event.data);
    });
    this.#all.push(thread);
    return thread;
  }

  /** Threads alive now (busy or idle). */
  get threadCount(): number {
    return this.#all.length;
  }

  /**
   * Retires the threads that have been idle CONFIGFS_IDLE_RETIRE_MS. Work arriving meanwhile
   * does not hold them: a steady trickle (a scan, the ALUA watch after an attach) keeps one
   * thread busy, and the rest of a burst's threads still end.
   */
  #scheduleRetire(delayMs: number): void {
    if (this.#idle.length === 0 || this.#retireTimer !== undefined) return;
    this.#retireTimer = setTimeout(() => this.#retireIdle(), delayMs);
    this.#retireTimer.unref();
  }

  #retireIdle(): void {
    this.#retireTimer = undefined;
    const now = performance.now();
    while (this.#idle.length > 0) {
      const idleMs = now - this.#idle[0]!.sinceMs;
      if (idleMs < CONFIGFS_IDLE_RETIRE_MS) {
        this.#scheduleRetire(CONFIGFS_IDLE_RETIRE_MS - idleMs);
        return;
      }
      const { thread } = this.#idle.shift()!;
      this.#all.splice(this.#all.indexOf(thread), 1);
      thread.terminate();
    }
  }

  /** Ends the threads; one still blocked in the kernel ends with the process. */
  override close(): void {
    clearTimeout(this.#retireTimer);
    for (const thread of this.#all.splice(0)) thread.terminate();
    this.#idle.length = 0;
  }

  static #fail(response: ConfigfsResponse, what: string): never {
    const code = response.error?.code;
    throw new ConfigfsError(`${what} failed: ${code ?? response.error?.message ?? "unknown error"}`, code);
  }

  override async writeAttribute(path: string, value: string | number): Promise<void> {
    const response = await this.#call("write", path, String(value));
    if (response.error !== undefined) ThreadConfigfsIo.#fail(response, `writing "${value}" to ${path}`);
  }

  override async readAttribute(path: string): Promise<string | undefined> {
    const response = await this.#call("read", path);
    return response.error === undefined ? String(response.value).trim() : undefined;
  }

  override async readAttributeIfPresent(path: string): Promise<string | undefined> {
    const response = await this.#call("read", path);
    if (response.error === undefined) return String(response.value).trim();
    if (response.error.code === "ENOENT") return undefined;
    ThreadConfigfsIo.#fail(response, `reading ${path}`);
  }

  override async makeDirectory(path: string): Promise<void> {
    const response = await this.#call("mkdir", path);
    if (response.error !== undefined && response.error.code !== "EEXIST") ThreadConfigfsIo.#fail(response, `mkdir ${path}`);
  }

  override async makeLink(target: string, path: string): Promise<void> {
    const response = await this.#call("symlink", path, target);
    if (response.error !== undefined) ThreadConfigfsIo.#fail(response, `ln -s ${target} ${path}`);
  }

  override async removeDirectory(path: string): Promise<void> {
    const response = await this.#call("rmdir", path);
    if (response.error !== undefined && response.error.code !== "ENOENT") ThreadConfigfsIo.#fail(response, `rmdir ${path}`);
  }

  override async removeLink(path: string): Promise<void> {
    const response = await this.#call("unlink", path);
    if (response.error !== undefined && response.error.code !== "ENOENT") ThreadConfigfsIo.#fail(response, `rm ${path}`);
  }

  override async listEntries(path: string): Promise<string[]> {
    const response = await this.#call("readdir", path);
    return response.error === undefined ? (response.value as string[]) : [];
  }

  override async readLink(path: string): Promise<string | undefined> {
    const response = await this.#call("readlink", path);
    return response.error === undefined ? String(response.value) : undefined;
  }

  override async exists(path: string): Promise<boolean> {
    const response = await this.#call("exists", path);
    return response.value === true;
  }
}
