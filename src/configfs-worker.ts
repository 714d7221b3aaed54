// One configfs operation at a time, synchronously, in a thread of its own: the operations serve
// needs may block until serve itself answers (see configfs/thread-io.ts). This file sits beside
// main.ts because `bun build --compile` only finds workers next to the main entry.
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import type { ConfigfsRequest, ConfigfsResponse } from "./configfs/worker-protocol.ts";

declare const self: Worker;

function run(request: ConfigfsRequest): ConfigfsResponse["value"] {
  const { operation, path, argument } = request;
  switch (operation) {
    case "write":
      writeFileSync(path, argument ?? "");
      return null;
    case "read":
      return readFileSync(path, "utf8");
    case "mkdir":
      mkdirSync(path);
      return null;
    case "symlink":
      symlinkSync(argument ?? "", path);
      return null;
    case "rmdir":
      rmdirSync(path);
      return null;
    case "unlink":
      unlinkSync(path);
      return null;
    case "readdir":
      return readdirSync(path);
    case "readlink":
      return readlinkSync(path);
    case "exists":
      return existsSync(path);
  }
}

self.onmessage = (event: MessageEvent<ConfigfsRequest>) => {
  const request = event.data;
  let response: ConfigfsResponse;
  try {
    response = { id: request.id, value: run(request) };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    response = { id: request.id, error: { code, message: error instanceof Error ? error.message : String(error) } };
  }
  self.postMessage(response);
};
