// The netlink event socket, read on the main thread when the kernel says it has something: the
// socket is O_ASYNC with this thread as its owner, so every datagram queued raises SIGIO here and
// the runtime runs `onSignal` on the event loop, which drains the socket without blocking.
//
// Why a signal and not a thread blocked in recv: TCM-USER events come a few times a day, and a
// JavaScript thread costs ~2 MB of memory whether it waits or not (issue 11's ≤ 64 MB for an idle
// serve). Standard signals coalesce while one is pending, which is harmless here: each handler
// run reads until EAGAIN, and a datagram queued after that raises a new SIGIO.
//
// With NETLINK_NO_ENOBUFS an overflow is silent, so after each drain the socket's drop counter
// (SO_MEMINFO) is compared with the last one. Once installed, the SIGIO handler stays for the
// life of the process: SIGIO's default action is to terminate, and a signal already in flight
// when a listener stops must still find a handler.
import * as libc from "../libc/libc.ts";
import * as net from "../libc/net.ts";
import { DATAGRAM_BYTES_MAX } from "./socket.ts";

export interface ListenerOptions {
  socketFd: number;
  onDatagram: (datagram: Uint8Array) => void;
  /** Events were lost; `dropsTotal` is the socket's drop count, or -1 when unknown. */
  onOverflow: (dropsTotal: number) => void;
  /** The socket failed; the listener has stopped. */
  onFailed: (reason: string) => void;
}

const listening = new Set<NetlinkListener>();
let signalHandlerInstalled = false;

function onSignal(): void {
  for (const listener of listening) listener.drain();
}

export class NetlinkListener {
  readonly #options: ListenerOptions;
  readonly #receiveBuffer = new Uint8Array(DATAGRAM_BYTES_MAX);
  readonly #memoryInfo = new Uint32Array(net.SK_MEMINFO_VARS);
  readonly #dropCounterWorks: boolean;
  #drops: number;
  #running = true;

  /** Must be constructed on the thread whose event loop handles the events (the main thread). */
  constructor(options: ListenerOptions) {
    this.#options = options;
    this.#dropCounterWorks = net.socketMemoryInfo(options.socketFd, this.#memoryInfo);
    this.#drops = this.#memoryInfo[net.SK_MEMINFO_DROPS]!;
    if (!signalHandlerInstalled) {
      process.on("SIGIO", onSignal);
      signalHandlerInstalled = true;
    }
    libc.setSignalOnReadable(options.socketFd, true, "netlink event socket");
    listening.add(this);
    // What was queued before O_ASYNC raised no signal.
    this.drain();
  }

  /** Reads every queued datagram, then looks for silent drops. */
  drain(): void {
    const { socketFd, onDatagram, onOverflow } = this.#options;
    while (this.#running) {
      const length = net.recvRaw(socketFd, this.#receiveBuffer, net.MSG_DONTWAIT);
      if (length === -net.EAGAIN) break;
      if (length === -net.ENOBUFS) {
        onOverflow(-1);
        continue;
      }
      if (length < 0) {
        this.#fail(`recv on the netlink event socket failed: errno ${-length}`);
        return;
      }
      // A copy: the handlers may keep what they were given past the next datagram.
      onDatagram(this.#receiveBuffer.slice(0, length));
    }
    if (!this.#running || !this.#dropCounterWorks) return;
    if (net.socketMemoryInfo(socketFd, this.#memoryInfo) && this.#memoryInfo[net.SK_MEMINFO_DROPS]! !== this.#drops) {
      this.#drops = this.#memoryInfo[net.SK_MEMINFO_DROPS]!;
      onOverflow(this.#drops);
    }
  }

  #fail(reason: string): void {
    this.#disarm();
    this.#options.onFailed(reason);
  }

  #disarm(): void {
    if (!this.#running) return;
    this.#running = false;
    listening.delete(this);
    try {
      libc.setSignalOnReadable(this.#options.socketFd, false, "netlink event socket");
    } catch {
      // The descriptor is already unusable: it signals nobody any more either.
    }
  }

  /** No datagram is handed over after this; the caller may close the socket then. */
  stop(): Promise<void> {
    this.#disarm();
    return Promise.resolve();
  }
}
