import { describe, expect, it } from "vitest";
import { caaNames, certificateNames, covered } from "../../../gateway-runtime/config/names.js";

describe("the certificate's names", () => {
  it("are the wildcard and the base while they cover rpc_domain", () => {
    for (const rpc of ["app.example.com", "gateway.app.example.com", "GATEWAY.app.example.com"]) {
      expect(certificateNames("app.example.com", rpc)).toEqual([
        "*.app.example.com",
        "app.example.com",
      ]);
      expect(caaNames("app.example.com", rpc)).toEqual(["app.example.com"]);
    }
  });

  it("add rpc_domain outside the base (dstack's seed: gateway.example.com beside app.example.com)", () => {
    expect(certificateNames("app.example.com", "gateway.example.com")).toEqual([
      "*.app.example.com",
      "app.example.com",
      "gateway.example.com",
    ]);
    expect(caaNames("app.example.com", "gateway.example.com")).toEqual([
      "app.example.com",
      "gateway.example.com",
    ]);
  });

  it("add a name two labels down (a wildcard covers one), whose CAA the base's records cover", () => {
    expect(certificateNames("app.example.com", "a.rpc.app.example.com")).toHaveLength(3);
    expect(caaNames("app.example.com", "a.rpc.app.example.com")).toEqual(["app.example.com"]);
  });

  it("match wildcards one label deep only", () => {
    expect(covered(["*.b.example"], "a.b.example")).toBe(true);
    expect(covered(["*.b.example"], "b.example")).toBe(false);
    expect(covered(["*.b.example"], "x.a.b.example")).toBe(false);
    expect(covered(["*.b.example"], "ab.example")).toBe(false);
  });
});
