// EXTENDED COPY between devices on different workers, the control plane's side: which device
// (NAA, worker, token, stats buffer) each worker serves, told to every other worker as devices
// come and go, and the chunk requests of a copy handed from the copying worker to the owner's
// mailbox and the answer handed back. The data moves in a SharedArrayBuffer the copying worker
// made; this thread only passes it on.
import type { PeerAnnouncement, PeerChunk, PeerIoFailure, PeerIoMessage, PeerNotice } from "./protocol.ts";

/** What the router needs of a worker (pool.ts DataPlaneWorker). */
export interface PeerEndpoint {
  readonly index: number;
  readonly alive: boolean;
  /** Posts a notice to the worker's mailbox: no reply. */
  notify(notice: PeerNotice): void;
  /** A peer-io request to the worker; rejects with the backstore's failure when it failed. */
  peerIo(chunk: PeerChunk): Promise<void>;
}

/** Thrown by PeerEndpoint.peerIo when the owner's backstore refused the chunk. */
export class PeerIoError extends Error {
  readonly failure: PeerIoFailure;

  constructor(failure: PeerIoFailure) {
    super(failure.message);
    this.name = "PeerIoError";
    this.failure = failure;
  }
}

export class PeerRouter {
  readonly #endpoints = new Map<number, PeerEndpoint>();
  /** Announced devices by `${workerIndex}:${token}`. */
  readonly #devices = new Map<string, PeerAnnouncement>();

  /** A new worker: it hears of every device already served elsewhere. */
  joined(endpoint: PeerEndpoint): void {
    this.#endpoints.set(endpoint.index, endpoint);
    for (const peer of this.#devices.values()) endpoint.notify({ type: "peer-added", id: 0, peer });
  }

  /** A worker ended; its devices are withdrawn by the caller (withdraw per token). */
  left(endpoint: PeerEndpoint): void {
    this.#endpoints.delete(endpoint.index);
  }

  announce(peer: PeerAnnouncement): void {
    this.#devices.set(`${peer.workerIndex}:${peer.token}`, peer);
    for (const endpoint of this.#others(peer.workerIndex)) endpoint.notify({ type: "peer-added", id: 0, peer });
  }

  withdraw(workerIndex: number, token: number): void {
    if (!this.#devices.delete(`${workerIndex}:${token}`)) return;
    for (const endpoint of this.#others(workerIndex)) endpoint.notify({ type: "peer-removed", id: 0, workerIndex, token });
  }

  /** A chunk request from `from`: to the owner, and its answer back. */
  route(from: PeerEndpoint, message: PeerIoMessage): void {
    const answer = (failure?: PeerIoFailure) => {
      if (from.alive) from.notify({ type: "peer-io-done", id: 0, requestId: message.requestId, failure });
    };
    const owner = this.#endpoints.get(message.workerIndex);
    if (owner === undefined || !owner.alive || !this.#devices.has(`${message.workerIndex}:${message.token}`)) {
      return answer({ kind: "unreachable", offsetBytes: 0, message: `worker ${message.workerIndex} no longer serves that device` });
    }
    const { token, write, lba, blocks, durable, data } = message;
    owner.peerIo({ token, write, lba, blocks, durable, data }).then(
      () => answer(),
      (error: unknown) =>
        answer(error instanceof PeerIoError ? error.failure : { kind: "unreachable", offsetBytes: 0, message: error instanceof Error ? error.message : String(error) }),
    );
  }

  #others(workerIndex: number): PeerEndpoint[] {
    return [...this.#endpoints.values()].filter((endpoint) => endpoint.index !== workerIndex && endpoint.alive);
  }
}
