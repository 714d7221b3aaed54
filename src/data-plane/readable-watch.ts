// How the file store's asynchronous engines hear that completions are waiting on a descriptor
// (io_uring's eventfd). On a data-plane worker the worker's own epoll watches it, so completions
// are reaped in the same wait as the devices' interrupts; anywhere else (tools, in-process tests)
// a wait thread does, through Waiter. The worker installs its watcher at start: module state is
// per thread.
import { Waiter } from "../uio/waiter.ts";

export interface ReadableWatch {
  stop(): Promise<void>;
}

/** Calls `onReady` each time `fd` is readable, after reading (and discarding) `readBytes` from it. */
export type WatchReadable = (fd: number, readBytes: number, onReady: () => void, onGone: (reason: string) => void) => ReadableWatch;

const threadWatch: WatchReadable = (fd, readBytes, onReady, onGone) => new Waiter({ fd, readBytes, onWake: onReady, onGone });

let current: WatchReadable = threadWatch;

export function watchReadable(fd: number, readBytes: number, onReady: () => void, onGone: (reason: string) => void): ReadableWatch {
  return current(fd, readBytes, onReady, onGone);
}

export function installReadableWatch(watch: WatchReadable): void {
  current = watch;
}

/** Runs `task` soon, after the current batch (a worker's next round; elsewhere setImmediate). */
export type Defer = (task: () => void) => void;

let currentDefer: Defer = (task) => void setImmediate(task);

export function defer(task: () => void): void {
  currentDefer(task);
}

export function installDefer(next: Defer): void {
  currentDefer = next;
}

/**
 * Keeps the runtime's event loop turning (timers, thread-safe FFI callbacks) until the returned
 * function is called: a data-plane worker otherwise sleeps in epoll_wait until a device or a
 * watched descriptor wakes it. Elsewhere the event loop turns anyway.
 */
export type HoldRuntimeTurns = () => () => void;

let currentHold: HoldRuntimeTurns = () => () => {};

export function holdRuntimeTurns(): () => void {
  return currentHold();
}

export function installRuntimeTurns(hold: HoldRuntimeTurns): void {
  currentHold = hold;
}
