// What the main thread and the I/O threads of the fallback engine share: one SharedArrayBuffer
// holding a job table indexed by token, a submission queue of tokens and a completion queue.
//
// Submission (one producer, many consumers): the main thread writes a job, puts its token at
// submissionQueue[tail & mask] and bumps SUBMIT_TAIL; a thread claims the next ticket with
// Atomics.add(CLAIM) and waits until SUBMIT_TAIL passes it. Completion (many producers, one
// consumer): a thread reserves a completion ticket, writes the token, then publishes the ticket's
// sequence number; the main thread takes entries in order while their sequence matches. Counters
// are i32 and wrap; they are only compared through differences. A token of -1 stops a thread.

export const CONTROL_SUBMIT_TAIL = 0;
export const CONTROL_CLAIM = 1;
export const CONTROL_COMPLETE_RESERVE = 2;
export const CONTROL_COMPLETION_SIGNAL = 3;
const CONTROL_WORDS = 4;

export const JOB_READV = 1;
export const JOB_WRITEV = 2;
export const JOB_FDATASYNC = 3;
/** The token an I/O thread reads as "exit". */
export const STOP_TOKEN = -1;

export interface PoolViews {
  readonly capacity: number;
  readonly mask: number;
  readonly control: Int32Array;
  readonly op: Int32Array;
  readonly fd: Int32Array;
  readonly iovecCount: Int32Array;
  readonly rwFlags: Int32Array;
  readonly offsetBytes: Float64Array;
  readonly iovecAddress: Float64Array;
  /** Bytes moved or -errno, written by the thread before it publishes the completion. */
  readonly result: Float64Array;
  readonly submissionQueue: Int32Array;
  readonly completionTokens: Int32Array;
  readonly completionSequence: Int32Array;
}

/** Bytes of the shared buffer for `capacity` tokens (a power of two). */
export function poolBufferBytes(capacity: number): number {
  return 8 * 3 * capacity + 4 * (CONTROL_WORDS + 7 * capacity);
}

/** The views over a pool buffer; both sides call this with the same capacity. */
export function poolViews(buffer: SharedArrayBuffer, capacity: number): PoolViews {
  if (capacity & (capacity - 1)) throw new Error(`I/O pool capacity ${capacity} is not a power of two`);
  let at = 0;
  const float64 = () => {
    const view = new Float64Array(buffer, at, capacity);
    at += 8 * capacity;
    return view;
  };
  const int32 = (length = capacity) => {
    const view = new Int32Array(buffer, at, length);
    at += 4 * length;
    return view;
  };
  // Float64 arrays first, so they stay 8-byte aligned.
  const offsetBytes = float64();
  const iovecAddress = float64();
  const result = float64();
  return {
    capacity,
    mask: capacity - 1,
    offsetBytes,
    iovecAddress,
    result,
    control: int32(CONTROL_WORDS),
    op: int32(),
    fd: int32(),
    iovecCount: int32(),
    rwFlags: int32(),
    submissionQueue: int32(),
    completionTokens: int32(),
    completionSequence: int32(),
  };
}

export interface PoolWorkerStart {
  buffer: SharedArrayBuffer;
  capacity: number;
  /** eventfd each finished job is announced on (the owner's epoll or wait thread watches it). */
  completionFd: number;
}
