import { expect, test } from "bun:test";
import { parseDevConfig } from "../../src/config/dev-config.ts";
import { HandlerClaims } from "../../src/serve/handler-claims.ts";

test("without --compat only our subtype is claimed and its config string is ours", () => {
  const claims = new HandlerClaims("appliance");
  expect(claims.subtypes).toEqual(["appliance"]);
  expect(claims.claims("appliance")).toBe(true);
  expect(claims.claims("file")).toBe(false);
  expect(claims.backstoreConfig("appliance", "file//srv/a.img")).toBe("file//srv/a.img");
});

test("--compat tcmu-runner claims file and qcow and reads their config strings as tcmu-runner does", () => {
  const claims = new HandlerClaims("appliance", "tcmu-runner");
  expect(claims.subtypes).toEqual(["appliance", "file", "qcow", "rbd"]);
  // targetcli's user:file writes dev_config=file//srv/f.img: the path after "file/".
  expect(parseDevConfig(claims.backstoreConfig("file", "/srv/f.img"))).toMatchObject({ kind: "file", path: "/srv/f.img", readOnly: false });
  // user:qcow: qcow, qcow2 or raw, decided by the content.
  expect(parseDevConfig(claims.backstoreConfig("qcow", "/srv/q.qcow2"))).toMatchObject({ kind: "detect", path: "/srv/q.qcow2" });
  expect(claims.difference("qcow")).toContain("read-only");
  expect(claims.difference("file")).toBeUndefined();
  // ceph-iscsi's user:rbd: dev_config=rbd/rbd/disk_1;osd_op_timeout=30
  expect(parseDevConfig(claims.backstoreConfig("rbd", "rbd/disk_1;osd_op_timeout=30"))).toMatchObject({ kind: "rbd", pool: "rbd", image: "disk_1", osdOpTimeoutSeconds: 30 });
});

test("our own subtype may not be one compat claims for tcmu-runner", () => {
  expect(() => new HandlerClaims("qcow", "tcmu-runner")).toThrow('subtype "qcow"');
});
