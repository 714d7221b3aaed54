// What the main thread and the netlink worker say to each other. Netlink events are rare
// (control plane), so plain postMessage is enough here; the data path's wait workers use shared
// memory instead.

export interface NetlinkWorkerStart {
  /** The event socket (subscribed already); the worker only reads it. */
  socketFd: number;
  /** An eventfd: a write asks the worker to leave. */
  stopFd: number;
  datagramBytesMax: number;
}

export type NetlinkWorkerReport =
  /** One datagram as received; the buffer is transferred, not copied. */
  | { kind: "datagram"; bytes: ArrayBuffer }
  /** Messages were lost (drop counter moved, or ENOBUFS): the caller must rescan. */
  | { kind: "overflow"; dropsTotal: number }
  /** The socket failed for good (an errno other than the ones above). */
  | { kind: "failed"; reason: string }
  | { kind: "stopped" };
