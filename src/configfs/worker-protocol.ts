// Requests the configfs worker runs and what it answers (see thread-io.ts).

export type ConfigfsOperation = "write" | "read" | "mkdir" | "symlink" | "rmdir" | "unlink" | "readdir" | "readlink" | "exists";

export interface ConfigfsRequest {
  id: number;
  operation: ConfigfsOperation;
  path: string;
  /** The value to write, or a symlink's target. */
  argument?: string;
}

export interface ConfigfsResponse {
  id: number;
  /** The operation's result (text, names, a boolean) when it succeeded. */
  value?: string | string[] | boolean | null;
  /** errno name (or message) when it failed. */
  error?: { code: string | undefined; message: string };
}
