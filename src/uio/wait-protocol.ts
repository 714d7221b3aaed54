// What the main thread and a wait worker share: a two-word SharedArrayBuffer.
export const WAIT_COUNTER_INDEX = 0;
export const WAIT_STATE_INDEX = 1;
export const WAIT_STATE_RUNNING = 0;
export const WAIT_STATE_GONE = 1;

export interface WaitWorkerStart {
  uioFd: number;
  stopFd: number;
  signal: SharedArrayBuffer;
  /** 4 for /dev/uioN; 8 for an eventfd standing in for it. */
  readBytes: number;
}
