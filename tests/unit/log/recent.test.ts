import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, RecentErrors } from "../../../gateway-runtime/log/index.js";

const sink = () =>
  new Writable({
    write(_chunk, _enc, done) {
      done();
    },
  });

describe("recent errors", () => {
  it("keeps the error lines a logger writes, newest first, in a bounded ring", () => {
    const recent = new RecentErrors(3);
    const log = createLogger("info", sink(), recent).child({ part: "certs" });
    log.info("fine");
    log.warn("meh");
    for (let k = 1; k <= 4; k++)
      log.error({ err: Object.assign(new Error(`boom ${k}`), { code: "E_X" }) }, `failed ${k}`);
    const lines = recent.list();
    expect(lines.map((l) => l.msg)).toEqual(["failed 4", "failed 3", "failed 2"]);
    expect(lines[0]).toMatchObject({ part: "certs", err: "E_X: boom 4" });
    expect(lines[0]?.time).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it("cuts long lines", () => {
    const recent = new RecentErrors();
    recent.write(JSON.stringify({ msg: "x".repeat(5000) }));
    expect(recent.list()[0]?.msg.length).toBeLessThan(510);
  });
});
