// Errors of opening an image. A refusal names the file and the reason, like QEMU's messages, so
// the operator can tell a damaged image from an unsupported feature. Errors during a read are
// BackstoreError "read" (MEDIUM ERROR at the guest offset) and are made where they happen.
import { BackstoreOpenError } from "../types.ts";

/** The image (or one in its chain) cannot be served: unsupported, inconsistent or unreadable. */
export class ImageRefusedError extends BackstoreOpenError {
  readonly path: string;
  readonly reason: string;

  constructor(path: string, reason: string) {
    super(`${path}: ${reason}`);
    this.name = "ImageRefusedError";
    this.path = path;
    this.reason = reason;
  }
}
