// The netlink event socket's blocking wait, in its own thread: epoll over the socket and an
// eventfd that asks the worker to stop. Each datagram goes to the main thread as it is; after
// each wake-up the socket's drop counter (SO_MEMINFO) is compared with the last one, because
// with NETLINK_NO_ENOBUFS an overflow is otherwise silent. This file sits beside main.ts because
// `bun build --compile` only finds workers next to the main entry (see worker-urls.ts).
import * as libc from "./libc/libc.ts";
import * as net from "./libc/net.ts";
import type { NetlinkWorkerReport, NetlinkWorkerStart } from "./netlink/worker-protocol.ts";

declare const self: Worker;

const SOCKET_TOKEN = 1;
const STOP_TOKEN = 2;
const EPOLL_EVENT_BYTES = 12;

function report(message: NetlinkWorkerReport, transfer: ArrayBuffer[] = []): void {
  self.postMessage(message, transfer);
}

self.onmessage = (event: MessageEvent<NetlinkWorkerStart>) => {
  const { socketFd, stopFd, datagramBytesMax } = event.data;
  const epollFd = libc.epollCreate();
  libc.epollAdd(epollFd, socketFd, SOCKET_TOKEN);
  libc.epollAdd(epollFd, stopFd, STOP_TOKEN);
  const events = new Uint8Array(EPOLL_EVENT_BYTES * 2);
  const view = new DataView(events.buffer);
  const receiveBuffer = new Uint8Array(new ArrayBuffer(datagramBytesMax));
  const memoryInfo = new Uint32Array(net.SK_MEMINFO_VARS);
  const dropCounterWorks = net.socketMemoryInfo(socketFd, memoryInfo);
  let drops = memoryInfo[net.SK_MEMINFO_DROPS]!;
  let running = true;
  // What loading and setting up left behind is garbage from now on: the thread then blocks in
  // epoll_wait for good, and no collection would ever run to free it.
  Bun.gc(true);
  while (running) {
    const ready = libc.epollWait(epollFd, events, -1);
    for (let index = 0; index < ready; index += 1) {
      if (view.getUint32(index * EPOLL_EVENT_BYTES + 4, true) === STOP_TOKEN) running = false;
    }
    if (!running) break;
    running = drain(socketFd, receiveBuffer);
    if (dropCounterWorks && net.socketMemoryInfo(socketFd, memoryInfo) && memoryInfo[net.SK_MEMINFO_DROPS]! !== drops) {
      drops = memoryInfo[net.SK_MEMINFO_DROPS]!;
      report({ kind: "overflow", dropsTotal: drops });
    }
  }
  libc.close(epollFd);
  report({ kind: "stopped" });
};

/** Reads every queued datagram; false when the socket failed for good. */
function drain(socketFd: number, buffer: Uint8Array<ArrayBuffer>): boolean {
  for (;;) {
    const length = net.recvRaw(socketFd, buffer, net.MSG_DONTWAIT);
    if (length === -net.EAGAIN) return true;
    if (length === -net.ENOBUFS) {
      report({ kind: "overflow", dropsTotal: -1 });
      continue;
    }
    if (length < 0) {
      report({ kind: "failed", reason: `recv on the netlink event socket failed: errno ${-length}` });
      return false;
    }
    const bytes = buffer.buffer.slice(0, length);
    report({ kind: "datagram", bytes }, [bytes]);
  }
}
