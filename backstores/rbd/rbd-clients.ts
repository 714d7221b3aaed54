// The rados clients of this thread, shared by its images. A client (rados_t) costs ~17 threads
// and a session with every monitor and OSD; tcmu-runner makes one per LUN (its issue #363: a
// dozen threads per LUN). Here the images a data-plane worker serves with the same ceph.conf,
// client id and OSD timeout share one, connected when the first opens and shut down when the
// last closes. A client the cluster blocklisted is dead for all its images: it is dropped from
// the table at once, so the images reconnecting make (and share) a new one.
import type { Pointer } from "bun:ffi";
import type { RbdDevConfig } from "../../src/config/dev-config-model.ts";
import { librbd } from "./librbd-binding.ts";
import { callInThread } from "./rbd-connect.ts";

interface Client {
  readonly key: string;
  readonly address: number;
  images: number;
}

const clients = new Map<string, Client>();
const connecting = new Map<string, Promise<Client>>();

function keyOf(config: RbdDevConfig): string {
  return JSON.stringify([config.confPath, config.clientId, config.osdOpTimeoutSeconds ?? null]);
}

/** One image's hold on a client. */
export class ClientLease {
  readonly #client: Client;
  #released = false;

  constructor(client: Client) {
    this.#client = client;
  }

  get cluster(): Pointer {
    return this.#client.address as Pointer;
  }

  /** The cluster blocklisted this client: new opens must not get it. */
  markDead(): void {
    if (clients.get(this.#client.key) === this.#client) clients.delete(this.#client.key);
  }

  /** The image is closed; the last one out shuts the client down. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#client.images -= 1;
    if (this.#client.images > 0) return;
    this.markDead();
    librbd().rados.rados_shutdown(this.#client.address as Pointer);
  }
}

/** A lease on the thread's client for `config`, connecting one (on the rbd thread) if none is live. */
export async function leaseClient(config: RbdDevConfig): Promise<ClientLease> {
  const key = keyOf(config);
  let client = clients.get(key);
  if (client === undefined) {
    let pending = connecting.get(key);
    if (pending === undefined) {
      pending = callInThread<number>({ kind: "connect", config })
        .then((address) => {
          const made: Client = { key, address, images: 0 };
          clients.set(key, made);
          return made;
        })
        .finally(() => connecting.delete(key));
      connecting.set(key, pending);
    }
    client = await pending;
  }
  client.images += 1;
  return new ClientLease(client);
}

/** Clients live on this thread now (for tests and `status`). */
export function liveClientCount(): number {
  return clients.size;
}
