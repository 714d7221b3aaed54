// The UIO wait without a thread: interrupts arrive as SIGIO on the event loop's thread
// (src/ring/signal-wake.ts) and call onWake there. A removed device is noticed by a slow check
// instead of by a failing blocking read: once a second the descriptor is read without blocking,
// and EIO (what reads of an unregistered UIO device answer) reports it gone. Nothing reads the
// descriptor per interrupt; the kernel does not need it (the event count only grows).
import { dlopen, FFIType } from "bun:ffi";
import { SystemCallError } from "../libc/errno.ts";
import * as libc from "../libc/libc.ts";
import { armSignalWake, disarmSignalWake } from "../ring/signal-wake.ts";

const lib = dlopen("libc.so.6", { fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i64], returns: FFIType.i32 } });
const F_GETFL = 3;
const F_SETFL = 4;
const S_IFMT = 0o170000;
const S_IFCHR = 0o020000;

/** How often a signal-driven waiter checks that its device still exists. */
export const GONE_CHECK_INTERVAL_MS = 1000;

export interface SignalWaiterOptions {
  fd: number;
  onWake: () => void;
  onGone: (reason: string) => void;
}

/** Whether `fd` is a character device (as /dev/uioN is): those implement fasync. */
export function isCharacterDevice(fd: number): boolean {
  return (libc.fstat(fd).mode & S_IFMT) === S_IFCHR;
}

export class SignalWaiter {
  readonly #options: SignalWaiterOptions;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #probe = new Uint8Array(8);
  #running = true;

  private constructor(options: SignalWaiterOptions) {
    this.#options = options;
    this.#timer = setInterval(this.#checkGone, GONE_CHECK_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Arms SIGIO for the descriptor; undefined when it refuses (the caller waits with a thread). */
  static start(options: SignalWaiterOptions): SignalWaiter | undefined {
    const flags = lib.symbols.fcntl(options.fd, F_GETFL, 0);
    // Non-blocking, so the gone check can read without waiting for an interrupt.
    if (flags < 0 || lib.symbols.fcntl(options.fd, F_SETFL, flags | libc.O_NONBLOCK) !== 0) return undefined;
    if (!armSignalWake(options.fd, options.onWake)) return undefined;
    return new SignalWaiter(options);
  }

  stop(): Promise<void> {
    if (this.#running) {
      this.#running = false;
      clearInterval(this.#timer);
      disarmSignalWake(this.#options.fd);
    }
    return Promise.resolve();
  }

  readonly #checkGone = (): void => {
    try {
      libc.readNonBlocking(this.#options.fd, this.#probe, 4);
    } catch (error) {
      if (!(error instanceof SystemCallError) || !this.#running) throw error;
      void this.stop();
      this.#options.onGone(`the device was removed (UIO reads fail: ${error.message})`);
    }
  };
}
