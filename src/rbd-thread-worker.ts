// The librbd calls that block for as long as the cluster takes to answer, run here instead of on
// a data-plane worker, whose other devices would stall behind them: connecting and opening an
// image (backstores/rbd/rbd-connect.ts) and walking its allocation (rbd-allocation.ts). This file
// sits beside main.ts because `bun build --compile` only finds workers next to the main entry.
import { connectImage, type ConnectReply } from "../backstores/rbd/rbd-connect.ts";
import { diffImage, type DiffRequest } from "../backstores/rbd/rbd-allocation.ts";
import type { RbdDevConfig } from "./config/dev-config.ts";

declare const self: Worker;

export type RbdThreadRequest = { kind: "connect"; config: RbdDevConfig } | ({ kind: "diff" } & DiffRequest);

self.onmessage = (event: MessageEvent<RbdThreadRequest>) => {
  const request = event.data;
  if (request.kind === "diff") {
    // Answers through the request's own callback (a sentinel call after librbd's), not a message.
    diffImage(request);
    return;
  }
  let reply: ConnectReply;
  try {
    reply = connectImage(request.config);
  } catch (error) {
    reply = { ok: false, message: error instanceof Error ? error.message : String(error), transient: false };
  }
  self.postMessage(reply);
};
