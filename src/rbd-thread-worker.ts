// The librbd calls that block for as long as the cluster takes to answer, run here instead of on
// a data-plane worker, whose other devices would stall behind them: connecting a client and
// opening an image (backstores/rbd/rbd-connect.ts), the image's exclusive lock (taking,
// breaking, releasing it and asking who owns it: rbd-lock-calls.ts) and walking an image's allocation
// (rbd-allocation.ts). This file sits beside main.ts because `bun build --compile` only finds
// workers next to the main entry.
import { connectCluster, openImage, type RbdThreadCall, type ThreadReply } from "../backstores/rbd/rbd-connect.ts";
import { diffImage, type DiffRequest } from "../backstores/rbd/rbd-allocation.ts";
import { lockCall } from "../backstores/rbd/rbd-lock-calls.ts";

declare const self: Worker;

export type RbdThreadRequest = RbdThreadCall | ({ kind: "diff" } & DiffRequest);

self.onmessage = (event: MessageEvent<RbdThreadRequest>) => {
  const request = event.data;
  if (request.kind === "diff") {
    // Answers through the request's own callback (a sentinel call after librbd's), not a message.
    diffImage(request);
    return;
  }
  let reply: ThreadReply<unknown>;
  try {
    if (request.kind === "connect") reply = connectCluster(request.config);
    else if (request.kind === "open") reply = openImage(request.config, request.cluster);
    else reply = { ok: true, value: lockCall(request) };
  } catch (error) {
    reply = { ok: false, message: error instanceof Error ? error.message : String(error), transient: false };
  }
  self.postMessage(reply);
};
