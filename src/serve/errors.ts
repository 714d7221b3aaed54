// Turning failures into the negative errno a netlink reply carries, and the log shape serve's
// parts share (consola instances satisfy it; tests pass a recorder).
import { BackstoreOpenError } from "../../backstores/types.ts";
import { DevConfigError } from "../config/dev-config-model.ts";
import { EAGAIN, EINVAL, EIO, SystemCallError } from "../libc/errno.ts";

export interface ServeLog {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** A reconfiguration we refuse; `errno` goes back to the kernel, which fails the configfs write with it. */
export class VetoError extends Error {
  readonly errno: number;

  constructor(message: string, errno = EINVAL) {
    super(message);
    this.name = "VetoError";
    this.errno = errno;
  }
}

/**
 * The negative errno for a failed attach or reconfiguration. -EAGAIN says the store's medium is
 * out of reach for now (a transient BackstoreOpenError): worth trying again later.
 */
export function errorStatus(error: unknown): number {
  if (error instanceof VetoError) return -error.errno;
  if (error instanceof SystemCallError) return -error.errno;
  if (error instanceof BackstoreOpenError && error.transient) return -EAGAIN;
  if (error instanceof BackstoreOpenError || error instanceof DevConfigError) return -EINVAL;
  return -EIO;
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
