// Asymmetric logical unit access (SPC-4 5.15): the target port groups of a logical unit that
// several gateways export, their states, which commands each state lets through, and the
// transitions — implicit (the medium's lock taken by the first write, or lost to another
// gateway) and explicit (SET TARGET PORT GROUPS). docs/ha.md is the design. The commands that
// report and set the states are in target-port-groups.ts; ScsiDevice.execute() applies the access
// checks and starts implicit acquisitions.
import { BackstoreError, type MediumOwnership } from "../../backstores/types.ts";
import type { AluaAccessState, TargetPortGroupChange, TargetPortGroupStatus, UnitAlua } from "./logical-unit.ts";
import { WRITE_OPCODES } from "./alua-access.ts";
import { ASYMMETRIC_ACCESS_STATE_CHANGED, type SenseReason } from "./sense.ts";

export type { AluaAccessState, TargetPortGroupChange, TargetPortGroupStatus } from "./logical-unit.ts";

/** ASYMMETRIC ACCESS STATE codes (SPC-4 table 171). */
export const ALUA_STATE_CODES: Record<AluaAccessState, number> = {
  "active-optimized": 0x0,
  "active-non-optimized": 0x1,
  standby: 0x2,
  unavailable: 0x3,
  transitioning: 0xf,
};

const STATES_BY_CODE = new Map<number, AluaAccessState>(
  Object.entries(ALUA_STATE_CODES).map(([state, code]) => [code, state as AluaAccessState]),
);

/** The state a code names; undefined for LBA dependent (4h), offline (Eh) and reserved codes. */
export function aluaStateFromCode(code: number): AluaAccessState | undefined {
  return STATES_BY_CODE.get(code);
}

/** RTPG STATUS CODE (SPC-4 table 170). */
export const STATUS_NONE = 0x00;
export const STATUS_ALTERED_BY_STPG = 0x01;
export const STATUS_ALTERED_IMPLICITLY = 0x02;

/** Group ids (TARGET PORT GROUP, 16 bits); 0 is left out as the kernel leaves it out. */
export const GROUP_ID_MIN = 1;
export const GROUP_ID_MAX = 0xffff;
/**
 * Groups one unit may have: REPORT TARGET PORT GROUPS answers them all from the 64 KiB response
 * scratch (12 bytes each), and a real setup has one per gateway.
 */
export const TARGET_PORT_GROUPS_MAX = 1024;
/** RTPG extended header IMPLICIT TRANSITION TIME when the configuration names none (the kernel's default). */
export const IMPLICIT_TRANSITION_SECONDS_DEFAULT = 30;
const IMPLICIT_TRANSITION_SECONDS_MAX = 0xff;
/** PROTOCOL IDENTIFIER is a 4-bit field (SPC-4 7.6.1). */
const PROTOCOL_IDENTIFIER_MAX = 0xf;

export interface TargetPortGroupConfig {
  id: number;
  name: string;
  state: AluaAccessState;
  preferred: boolean;
}

/** Static, serialisable (structured-clone) ALUA setup of one device, from configfs at attach. */
export interface AluaConfig {
  /** Every group of the LU on every gateway, any order (reported sorted by id). */
  groups: TargetPortGroupConfig[];
  /** This gateway's group (must be in groups). */
  localGroupId: number;
  /** SPC-4 7.6.1: 0x5 iSCSI, 0x6 SAS (tcm_loop) — for the PIV designators of VPD 0x83. */
  protocolIdentifier: number;
  /** RTPG extended header IMPLICIT TRANSITION TIME; default 30. */
  implicitTransitionSeconds?: number;
}

/** Whether a group in `state` accepts I/O at all (the primary states that are active). */
function isActive(state: AluaAccessState): boolean {
  return state === "active-optimized" || state === "active-non-optimized";
}

/** Standby and unavailable are set on purpose (configuration or STPG); the lock does not undo them. */
function isExplicitlyInactive(state: AluaAccessState): boolean {
  return state === "standby" || state === "unavailable";
}

interface GroupRecord {
  readonly id: number;
  readonly preferred: boolean;
  state: AluaAccessState;
  statusCode: number;
}

/**
 * The ALUA state of one device on this gateway. Without a medium lock (`ownership`), the states
 * are the configured ones as SET TARGET PORT GROUPS changes them. With one, the lock decides who
 * is active/optimized: the owner's published group id is what every gateway reports, and this
 * gateway takes the lock on its first write (implicitly, never from a live owner) or on
 * STPG (explicitly, fencing a live owner).
 */
export class AluaState implements UnitAlua {
  readonly localGroupId: number;
  readonly protocolIdentifier: number;
  readonly implicitTransitionSeconds: number;
  /** Told the local group's new state whenever it changes (metrics, the configfs mirror). */
  onChange?: (state: AluaAccessState) => void;
  /**
   * Set by the unit: the local group changed state by itself (lock taken by I/O, or lost), so it
   * raises ASYMMETRIC ACCESS STATE CHANGED (SPC-4 5.15.2.7).
   */
  onImplicitChange?: (reason: SenseReason) => void;
  readonly #groups: GroupRecord[];
  readonly #local: GroupRecord;
  readonly #ownership: MediumOwnership | undefined;
  #transitions = 0;
  /** Why another gateway last broke our lock (ownership.onLost); set means we were fenced. */
  #lastLossReason: string | undefined;
  /** The implicit acquisition in flight; every command that needs the lock waits on this one. */
  #acquiring: Promise<void> | undefined;

  constructor(config: AluaConfig, ownership?: MediumOwnership) {
    checkConfig(config);
    this.localGroupId = config.localGroupId;
    this.protocolIdentifier = config.protocolIdentifier;
    this.implicitTransitionSeconds = config.implicitTransitionSeconds ?? IMPLICIT_TRANSITION_SECONDS_DEFAULT;
    this.#groups = config.groups
      .map((group) => ({ id: group.id, preferred: group.preferred, state: group.state, statusCode: STATUS_NONE }))
      .sort((left, right) => left.id - right.id);
    this.#local = this.#groups.find((group) => group.id === config.localGroupId)!;
    this.#ownership = ownership;
    if (ownership !== undefined) ownership.onLost = (reason) => this.#lost(reason);
  }

  get localState(): AluaAccessState {
    return this.#local.state;
  }

  get transitions(): number {
    return this.#transitions;
  }

  get ownsMedium(): boolean | undefined {
    return this.#ownership?.owned;
  }

  /** Another gateway broke this gateway's lock and it has not taken it back: the cluster refuses it. */
  get fenced(): boolean {
    return this.#lastLossReason !== undefined && this.#ownership?.owned === false;
  }

  /**
   * Nothing to check or acquire for any command: the local group is active and the medium's lock
   * (if any) is ours. execute() reads this on every command, so it allocates nothing.
   */
  get settled(): boolean {
    return isActive(this.#local.state) && (this.#ownership === undefined || this.#ownership.owned);
  }

  /** Whether a command must first take the medium's lock: a write here while we do not hold it (docs/ha.md). */
  acquiresFor(opcode: number): boolean {
    return this.#ownership !== undefined && !this.#ownership.owned && WRITE_OPCODES.has(opcode);
  }

  hasGroup(id: number): boolean {
    return this.#groups.some((group) => group.id === id);
  }

  groupStates(): readonly TargetPortGroupStatus[] {
    return this.#statuses(undefined);
  }

  /**
   * What every gateway answers REPORT TARGET PORT GROUPS with: computed from the lock's owner
   * (a fact of the medium, the same for every gateway) and the configured groups. Until somebody
   * owns the lock — or while the medium cannot say — the current states.
   */
  async report(): Promise<readonly TargetPortGroupStatus[]> {
    if (this.#ownership === undefined) return this.#statuses(undefined);
    let ownerTag: number | undefined;
    try {
      ownerTag = await this.#ownership.ownerTag();
    } catch (error) {
      // A path probe must keep working while the cluster does not answer: the multipath layer
      // would fail the path otherwise, although its I/O answers NOT READY and is retried.
      if (!(error instanceof BackstoreError)) throw error;
    }
    return this.#statuses(ownerTag !== undefined && this.hasGroup(ownerTag) ? ownerTag : undefined);
  }

  /**
   * Takes the medium's lock for a write: only a free lock or a dead owner's. Commands
   * arriving meanwhile share the same attempt. Rejects BackstoreError("unavailable") while a live
   * gateway owns it; the caller answers NOT READY, ASYMMETRIC ACCESS STATE TRANSITION.
   */
  acquireImplicitly(): Promise<void> {
    this.#acquiring ??= this.#acquireImplicitly().finally(() => {
      this.#acquiring = undefined;
    });
    return this.#acquiring;
  }

  /**
   * SET TARGET PORT GROUPS (SPC-4 6.45), `changes` already checked. The lock moves first — taken,
   * breaking a live owner, when the local group becomes active/optimized; given up when it
   * becomes anything else or a peer is made active/optimized — and the states change only if
   * that worked. No unit attention: the initiator asked for it.
   */
  async setStates(changes: readonly TargetPortGroupChange[]): Promise<void> {
    await this.#acquiring?.catch(() => undefined);
    const ownership = this.#ownership;
    const ownedBefore = ownership?.owned;
    const localTarget = changes.findLast((change) => change.id === this.localGroupId)?.state;
    const peerOptimized = changes.some((change) => change.id !== this.localGroupId && change.state === "active-optimized");
    if (ownership !== undefined) {
      if (localTarget === "active-optimized") {
        if (!ownership.owned) await ownership.acquire({ breakLiveOwner: true, ownerTag: this.localGroupId });
      } else if ((localTarget !== undefined || peerOptimized) && ownership.owned) {
        await ownership.release();
      }
    }
    const before = this.#local.state;
    for (const change of changes) {
      const group = this.#groups.find((candidate) => candidate.id === change.id)!;
      group.state = change.state;
      group.statusCode = STATUS_ALTERED_BY_STPG;
    }
    // With a lock there is one owner, and its group alone is active/optimized: ours when we hold
    // it; a peer's made so here when we just gave it up.
    if (ownership !== undefined && ownership.owned) this.#demoteOptimizedExcept(this.localGroupId, STATUS_ALTERED_BY_STPG);
    else if (ownership !== undefined && peerOptimized && this.#local.state === "active-optimized") {
      this.#local.state = "active-non-optimized";
      this.#local.statusCode = STATUS_ALTERED_BY_STPG;
    }
    if (this.#local.state !== before || ownership?.owned !== ownedBefore) this.#changed(this.#local.state !== before);
  }

  async #acquireImplicitly(): Promise<void> {
    const ownership = this.#ownership!;
    try {
      await ownership.acquire({ breakLiveOwner: false, ownerTag: this.localGroupId });
    } catch (error) {
      // Another gateway lives and owns the lock: we are non-optimized, as its RTPG says. No unit
      // attention — the command that tried is told NOT READY, and the reported state is the
      // owner's view already.
      if (error instanceof BackstoreError && error.kind === "unavailable" && this.#local.state === "active-optimized") {
        this.#local.state = "active-non-optimized";
        this.#local.statusCode = STATUS_ALTERED_IMPLICITLY;
        this.#changed(true);
      }
      throw error;
    }
    const before = this.#local.state;
    this.#local.state = "active-optimized";
    this.#local.statusCode = STATUS_ALTERED_IMPLICITLY;
    this.#demoteOptimizedExcept(this.localGroupId, STATUS_ALTERED_IMPLICITLY);
    this.#changed(before !== this.#local.state);
    this.onImplicitChange?.(ASYMMETRIC_ACCESS_STATE_CHANGED);
  }

  /** Another gateway broke our lock (it is fenced from the medium now): we are non-optimized. */
  #lost(reason: string): void {
    this.#lastLossReason = reason;
    if (isExplicitlyInactive(this.#local.state)) return;
    this.#local.state = "active-non-optimized";
    this.#local.statusCode = STATUS_ALTERED_IMPLICITLY;
    this.#changed(true);
    this.onImplicitChange?.(ASYMMETRIC_ACCESS_STATE_CHANGED);
  }

  /** Every active/optimized group but `keepId` becomes active/non-optimized. */
  #demoteOptimizedExcept(keepId: number | undefined, statusCode: number): void {
    for (const group of this.#groups) {
      if (group.id === keepId || group.state !== "active-optimized") continue;
      group.state = "active-non-optimized";
      group.statusCode = statusCode;
    }
  }

  /**
   * Tells onChange the local state; called when it changed (`stateChanged`, counted) and when
   * only the lock moved (taken in a state that stays active/optimized), so published gauges of
   * lock ownership follow too.
   */
  #changed(stateChanged: boolean): void {
    if (stateChanged) this.#transitions += 1;
    this.onChange?.(this.#local.state);
  }

  /**
   * The groups in order; the owner's (when known) active/optimized, ours transitioning while we
   * take the lock. A state that comes from the lock carries no status code: what this gateway saw
   * happen, others cannot know, and every path must give the same answer.
   */
  #statuses(ownerTag: number | undefined): TargetPortGroupStatus[] {
    return this.#groups.map((group) => {
      let state = group.state;
      let statusCode = group.statusCode;
      if (ownerTag !== undefined && (group.id === ownerTag || !isExplicitlyInactive(state))) {
        state = group.id === ownerTag ? "active-optimized" : "active-non-optimized";
        statusCode = STATUS_NONE;
      }
      if (group === this.#local && this.#acquiring !== undefined) state = "transitioning";
      return { id: group.id, state, preferred: group.preferred, statusCode };
    });
  }
}

function checkConfig(config: AluaConfig): void {
  if (config.groups.length === 0) throw new Error("ALUA needs at least one target port group");
  if (config.groups.length > TARGET_PORT_GROUPS_MAX) throw new Error(`ALUA takes at most ${TARGET_PORT_GROUPS_MAX} target port groups`);
  const ids = new Set<number>();
  for (const group of config.groups) {
    if (!Number.isInteger(group.id) || group.id < GROUP_ID_MIN || group.id > GROUP_ID_MAX) {
      throw new Error(`target port group ${group.name}: id ${group.id} is not in ${GROUP_ID_MIN}..${GROUP_ID_MAX}`);
    }
    if (ids.has(group.id)) throw new Error(`target port group ${group.name}: id ${group.id} is used twice`);
    if (!(group.state in ALUA_STATE_CODES)) throw new Error(`target port group ${group.name}: unknown state ${String(group.state)}`);
    ids.add(group.id);
  }
  if (!ids.has(config.localGroupId)) throw new Error(`local target port group ${config.localGroupId} is not among the groups`);
  const protocol = config.protocolIdentifier;
  if (!Number.isInteger(protocol) || protocol < 0 || protocol > PROTOCOL_IDENTIFIER_MAX) {
    throw new Error(`protocol identifier ${protocol} is not a 4-bit value`);
  }
  const seconds = config.implicitTransitionSeconds;
  if (seconds !== undefined && (!Number.isInteger(seconds) || seconds < 0 || seconds > IMPLICIT_TRANSITION_SECONDS_MAX)) {
    throw new Error(`implicit transition time ${seconds} s is not in 0..${IMPLICIT_TRANSITION_SECONDS_MAX}`);
  }
}
