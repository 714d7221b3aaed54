// The main thread's side of the netlink worker: hands each datagram and each overflow notice to
// callbacks, and stops the worker through its eventfd.
import * as libc from "../libc/libc.ts";
import { NETLINK_WORKER_URL } from "../worker-urls.ts";
import { DATAGRAM_BYTES_MAX } from "./socket.ts";
import type { NetlinkWorkerReport, NetlinkWorkerStart } from "./worker-protocol.ts";

export interface ListenerOptions {
  socketFd: number;
  onDatagram: (datagram: Uint8Array) => void;
  /** Events were lost; `dropsTotal` is the socket's drop count, or -1 when unknown. */
  onOverflow: (dropsTotal: number) => void;
  /** The socket or the worker failed; the listener has stopped. */
  onFailed: (reason: string) => void;
}

export class NetlinkListener {
  readonly #worker: Worker;
  readonly #stopFd: number;
  readonly #stopped: Promise<void>;
  #running = true;

  constructor(options: ListenerOptions) {
    this.#stopFd = libc.eventfd(0, 0);
    this.#worker = new Worker(NETLINK_WORKER_URL);
    this.#stopped = new Promise((resolve) => {
      this.#worker.addEventListener("message", (event: MessageEvent<NetlinkWorkerReport>) => {
        const report = event.data;
        if (report.kind === "stopped") return resolve();
        if (!this.#running) return;
        if (report.kind === "datagram") options.onDatagram(new Uint8Array(report.bytes));
        else if (report.kind === "overflow") options.onOverflow(report.dropsTotal);
        else {
          this.#running = false;
          resolve();
          options.onFailed(report.reason);
        }
      });
      this.#worker.addEventListener("error", (event) => {
        resolve();
        if (!this.#running) return;
        this.#running = false;
        options.onFailed(`netlink worker failed: ${event.message}`);
      });
    });
    const start: NetlinkWorkerStart = { socketFd: options.socketFd, stopFd: this.#stopFd, datagramBytesMax: DATAGRAM_BYTES_MAX };
    this.#worker.postMessage(start);
  }

  async stop(): Promise<void> {
    if (this.#running) {
      this.#running = false;
      libc.write(this.#stopFd, new BigUint64Array([1n]), 8);
    }
    await this.#stopped;
    this.#worker.terminate();
    libc.close(this.#stopFd);
  }
}
