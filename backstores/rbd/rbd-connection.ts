// The store's session with the cluster: the open image and its requests, and what happens when
// the cluster stops answering. A timeout (an OSD or monitor gone) needs nothing from us: librados
// reconnects by itself and the next command works. A blocklisted client (another gateway broke
// its exclusive lock at failover, or an operator ran `ceph osd blocklist add`) is dead for good:
// its rados instance can never talk to the OSDs again. The connection then lets what is in flight
// finish (with ESHUTDOWN), closes the image and the rados instance, and opens them again as a new
// client, retrying every RECONNECT_RETRY_MS; commands meanwhile are answered NOT READY. Each
// outage is reported once through onHealth, and once more when the store serves again.
import { holdRuntimeTurns } from "../../src/data-plane/readable-watch.ts";
import { errnoName, ESHUTDOWN } from "../../src/libc/errno.ts";
import type { Librbd } from "./librbd-binding.ts";
import { UNAVAILABLE_ERRNOS } from "./rbd-errors.ts";
import { RbdImage } from "./rbd-image.ts";
import { RbdRequests } from "./rbd-requests.ts";

/** How long a failed reconnect waits before the next try. */
export const RECONNECT_RETRY_MS = 2000;

export interface ConnectionHooks {
  /** Every RBD_SIZE_CHECK_MS with the image open (the size check). */
  onPeriod(image: RbdImage): void;
  /** The cluster went out of reach (false) or serves again (true); called once per change. */
  onHealth(available: boolean, reason: string): void;
  /**
   * The cluster blocklisted this client (another gateway broke the image's lock): called before
   * the request that found it out settles, so the lock's loss is known before its failure is.
   */
  onBlocklisted(): void;
  /** Settles when nothing else uses the image any more (an allocation walk or a lock call on the rbd thread). */
  beforeClose(): Promise<void>;
}

export class RbdConnection {
  readonly #lib: Librbd;
  readonly #hooks: ConnectionHooks;
  readonly #config: RbdImage["config"];
  #image: RbdImage | null = null;
  #requests: RbdRequests | null = null;
  #available = true;
  #reconnecting: Promise<void> | undefined;
  #closed = false;

  constructor(lib: Librbd, image: RbdImage, hooks: ConnectionHooks) {
    this.#lib = lib;
    this.#hooks = hooks;
    this.#config = image.config;
    this.#attach(image);
  }

  /** The requests of the connected image; null while reconnecting (answer NOT READY). */
  requestsOrNull(): RbdRequests | null {
    return this.#reconnecting === undefined ? this.#requests : null;
  }

  imageOrNull(): RbdImage | null {
    return this.#reconnecting === undefined ? this.#image : null;
  }

  /** Looks at every librbd result: the first failure of an outage and the first success after it are reported. */
  observe(result: number): void {
    if (result >= 0) {
      if (!this.#available && this.#reconnecting === undefined) this.#report(true, "the cluster answers again");
      return;
    }
    const errno = -result;
    if (errno === ESHUTDOWN) this.#startReconnect();
    else if (UNAVAILABLE_ERRNOS.has(errno) && this.#available) this.#report(false, `the cluster does not answer (${errnoName(errno)}); commands get NOT READY until it does`);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#reconnecting;
    await this.#detach();
  }

  #attach(image: RbdImage): void {
    this.#image = image;
    this.#requests = new RbdRequests(this.#lib, image.handle, () => this.#hooks.onPeriod(image));
  }

  async #detach(): Promise<void> {
    const [requests, image] = [this.#requests, this.#image];
    this.#requests = null;
    this.#image = null;
    await requests?.close();
    await this.#hooks.beforeClose();
    image?.close();
  }

  #report(available: boolean, reason: string): void {
    this.#available = available;
    this.#hooks.onHealth(available, reason);
  }

  #startReconnect(): void {
    if (this.#reconnecting !== undefined || this.#closed) return;
    this.#image?.clientBlocklisted();
    this.#hooks.onBlocklisted();
    this.#report(false, "the cluster blocklisted this client (another gateway took the image's lock, or an operator did it): reconnecting as a new client; commands get NOT READY until then");
    // Timers must fire on a data-plane worker too, which otherwise sleeps until its devices wake it.
    const release = holdRuntimeTurns();
    this.#reconnecting = this.#reconnect().finally(() => {
      release();
      this.#reconnecting = undefined;
    });
  }

  async #reconnect(): Promise<void> {
    await this.#detach();
    for (let attempt = 1; !this.#closed; attempt += 1) {
      let image: RbdImage;
      try {
        image = await RbdImage.open(this.#config);
      } catch {
        await Bun.sleep(RECONNECT_RETRY_MS);
        continue;
      }
      if (this.#closed) {
        image.close();
        return;
      }
      this.#attach(image);
      this.#report(true, `reconnected to the cluster as a new client${attempt > 1 ? ` after ${attempt} attempts` : ""}`);
      return;
    }
  }
}
