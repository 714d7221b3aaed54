// The logical units this process serves, by NAA designator (VPD 0x83): EXTENDED COPY names its
// source and destination that way (SPC-4 6.4.5.4, identification descriptor E4h), and the copy
// manager must find them. A ScsiDevice registers itself when constructed and leaves on close().
//
// This is deliberately process-wide state, like the kernel's g_device_list: a copy may span any
// two devices served here. Entries are weak, so a device dropped without close() (a test that
// forgets) cannot pin its backstore in memory; close() is still the way to leave. The registry
// holds CopyUnits, not devices: what the copy manager needs of a peer, which a proxy for a device
// on another thread can provide as well (its owner must keep it alive: entries are weak).
import type { CopyUnit, CopyUnitLookup } from "./logical-unit.ts";

/** Units served by other threads (data-plane peer-units.ts), looked up after this thread's. */
export interface PeerUnitList {
  list(naaKey: string): readonly CopyUnit[];
}

export class DeviceRegistry implements CopyUnitLookup {
  readonly #byNaa = new Map<string, WeakRef<CopyUnit>[]>();
  #peers: PeerUnitList | undefined;

  /** A data-plane worker lists the other workers' units here. */
  setPeers(peers: PeerUnitList | undefined): void {
    this.#peers = peers;
  }

  register(naaKey: string, unit: CopyUnit): void {
    const entries = this.#live(naaKey);
    if (!entries.some((entry) => entry.deref() === unit)) entries.push(new WeakRef(unit));
    this.#byNaa.set(naaKey, entries);
  }

  unregister(naaKey: string, unit: CopyUnit): void {
    const entries = this.#live(naaKey).filter((entry) => entry.deref() !== unit);
    if (entries.length === 0) this.#byNaa.delete(naaKey);
    else this.#byNaa.set(naaKey, entries);
  }

  /**
   * The one open unit with this designator. Two units whose serials give the same NAA are
   * ambiguous (here or on another thread); a copy manager must not guess between them, so
   * neither is returned.
   */
  find(naaKey: string): CopyUnit | undefined {
    const entries = this.#live(naaKey);
    const peers = this.#peers?.list(naaKey) ?? [];
    if (entries.length + peers.length !== 1) return undefined;
    return entries.length === 1 ? entries[0]!.deref() : peers[0];
  }

  get size(): number {
    let count = 0;
    for (const key of [...this.#byNaa.keys()]) count += this.#live(key).length;
    return count;
  }

  #live(naaKey: string): WeakRef<CopyUnit>[] {
    const entries = (this.#byNaa.get(naaKey) ?? []).filter((entry) => entry.deref() !== undefined);
    if (entries.length === 0) this.#byNaa.delete(naaKey);
    return entries;
  }
}

/** Every ScsiDevice of this process, unless its config names another registry (tests do). */
export const PROCESS_DEVICE_REGISTRY = new DeviceRegistry();
