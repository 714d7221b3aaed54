// The messages between the control plane (main thread) and a data-plane worker. Requests go
// through the worker's mailbox: the message is posted, a shared counter of posted messages is
// bumped, and the worker's control eventfd is written; the worker, blocked in epoll_wait, wakes,
// yields to its runtime until it has received as many messages as were posted, and handles
// them. Replies and events come back as ordinary messages (the main thread runs an event loop).
import type { BackstoreErrorKind } from "../../backstores/types.ts";
import type { DevConfig } from "../config/dev-config-model.ts";
import type { AluaAccessState, AluaConfig } from "../scsi/alua.ts";
import type { DataPlaneSettings } from "./settings.ts";

/** Index of the posted-messages counter in WorkerStart.posted (an Int32Array). */
export const POSTED_INDEX = 0;
/** Requests a worker has not handled yet, at most; the control plane waits beyond that. */
export const MAILBOX_DEPTH_MAX = 1024;

export interface WorkerStart {
  type: "start";
  workerIndex: number;
  /** eventfd the control plane writes after posting. */
  controlFd: number;
  posted: SharedArrayBuffer;
  settings: DataPlaneSettings;
}

/**
 * Where a device's data lives: the dev_config's <path> part and its parse. The control plane
 * parses (and refuses what does not parse); a worker only opens, so it never loads the parser.
 */
export interface StoreSource {
  configPath: string;
  config: DevConfig;
}

export interface DeviceSpec {
  name: string;
  /** `user_<hba>/<name>`: what the RAM store names its memory after. */
  deviceKey: string;
  store: StoreSource;
  /** dev_size; 0: the store's own size. */
  sizeBytes: number;
  blockSizeBytes: number;
  /** hw_max_sectors: the transfer the device prefers (OPTIMAL TRANSFER LENGTH), in blocks. */
  hwMaxSectors: number;
  writeCacheEnabled: boolean;
  unitSerial: string;
  /** The device's ALUA target port groups (configfs alua/ at attach); absent: no ALUA (TPGS 0). */
  alua?: AluaConfig;
  allowedRoots: string[];
  /** Test and benchmark hook: a module whose `openBackstore` replaces backstores/open.ts. */
  openerModule?: string;
}

export interface AttachRequest {
  type: "attach";
  id: number;
  token: number;
  spec: DeviceSpec;
  /** Where interrupts are read (the UIO fd; a pipe under the simulator) and how many bytes a read takes. */
  waitFd: number;
  waitReadBytes: number;
  /**
   * Wait edge-triggered and never read on a wake-up (a UIO fd: its poll reports every
   * uio_event_notify as a new wake-up, so the event count need not be read); false for a pipe,
   * which must be drained.
   */
  edgeTriggered: boolean;
  /** Where the doorbell's 4 bytes are written (the UIO fd; a pipe under the simulator). */
  doorbellFd: number;
  /** The mapping, made and unmapped by the control plane only. */
  address: number;
  mapBytes: number;
  stats: SharedArrayBuffer;
}

export type ControlRequest =
  | AttachRequest
  | { type: "resize"; id: number; token: number; sizeBytes: number }
  | { type: "reopen"; id: number; token: number; store: StoreSource; sizeBytes: number }
  | { type: "write-cache"; id: number; token: number; enabled: boolean }
  /** The device's ALUA groups changed in configfs (created after attach, or edited): serve them. */
  | { type: "alua-config"; id: number; token: number; config?: AluaConfig }
  | { type: "detach"; id: number; token: number; destroy: boolean }
  /** Test hook: the device's next batch throws, as a bug in the data path would. */
  | { type: "inject-fault"; id: number; token: number }
  /** Test hook: the worker's loop itself throws, ending the thread with every device it serves. */
  | { type: "crash-worker"; id: number; token: number }
  /** EXTENDED COPY on another worker reads or writes one chunk of this device (peer-units.ts). */
  | PeerIoRequest
  | PeerNotice;

/** Notices to a worker about other workers' devices: handled as they arrive, never answered. */
export type PeerNotice =
  | { type: "peer-added"; id: 0; peer: PeerAnnouncement }
  | { type: "peer-removed"; id: 0; workerIndex: number; token: number }
  | { type: "peer-io-done"; id: 0; requestId: number; failure?: PeerIoFailure };

/** A device served by another worker, as EXTENDED COPY here may name it. */
export interface PeerAnnouncement {
  naaKey: string;
  workerIndex: number;
  token: number;
  /** Its stats buffer: the unit state (device-stats.ts UnitStateReader) is read from there. */
  stats: SharedArrayBuffer;
}

/** One chunk of an EXTENDED COPY for the device `token` of the worker that serves it. */
export interface PeerChunk {
  token: number;
  write: boolean;
  lba: number;
  blocks: number;
  durable: boolean;
  /** blocks × block size bytes: filled by a read, the source of a write. */
  data: SharedArrayBuffer;
}

/** The chunk as the owning worker gets it (a request: it replies). */
export interface PeerIoRequest extends PeerChunk {
  type: "peer-io";
  id: number;
}

/** The chunk as the copying worker asks for it; the control plane routes it to `workerIndex`. */
export interface PeerIoMessage extends PeerChunk {
  type: "peer-io";
  requestId: number;
  workerIndex: number;
}

/** Why a chunk failed: a backstore error's kind and offset, carried to the copying unit. */
export interface PeerIoFailure {
  kind: BackstoreErrorKind;
  offsetBytes: number;
  message: string;
}

/** What the control plane learns of a store the worker opened. */
export interface StoreSummary {
  /** The unit's NAA designator (identity.ts naaKey): how EXTENDED COPY on other workers names it. */
  naaKey: string;
  kind: string;
  description: string;
  storeSizeBytes: number;
  sizeBytes: number;
  warnings: string[];
}

export interface FailureReport {
  message: string;
  /** errorStatus() of the failure: the negative errno a netlink reply carries. */
  status: number;
  /** Set when a backstore failed a peer-io request. */
  backstore?: PeerIoFailure;
}

export type WorkerMessage =
  | { type: "ready"; workerIndex: number }
  | { type: "reply"; id: number; ok: true; value?: StoreSummary }
  | { type: "reply"; id: number; ok: false; failure: FailureReport }
  /** The device vanished (UIO reads fail); the worker stopped waiting on it. */
  | { type: "gone"; token: number; reason: string }
  /** The data path threw: the worker closed the device's store; the control plane reattaches it. */
  | { type: "released"; token: number; reason: string }
  /** MODE SELECT changed WCE. */
  | { type: "write-cache-changed"; token: number; enabled: boolean }
  /** This gateway's ALUA group changed state (lock taken or lost, STPG): mirrored into configfs. */
  | { type: "alua-changed"; token: number; state: AluaAccessState }
  | { type: "log"; level: "warn" | "error" | "info"; message: string }
  /** EXTENDED COPY here needs a chunk of a device on another worker; answered by peer-io-done. */
  | PeerIoMessage;
