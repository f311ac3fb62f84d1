import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compileRouter,
  DEFAULT_PORT,
  formatAppLabel,
  parseAppLabel,
  type Route,
  RouteError,
  type RouteErrorCode,
  type RouteMode,
} from "../../../gateway-runtime/proxy/route.js";

const BASE = "base.example.com";
const ID = "3327603e03f5bd1f830812ca4a789277fc31f577"; // 40-hex app id
const INST = "deadbeef111111111111111111111111"; // instance-style id from the Phala docs
const route = compileRouter({ baseDomain: BASE });

const app = (id: string, port: number, mode: RouteMode): Route => ({ kind: "app", id, port, mode });
const custom = (name: string): Route => ({ kind: "custom", name });

const ok: ReadonlyArray<readonly [string, Route]> = [
  // every row of the grammar, with default and explicit ports
  [`${ID}.${BASE}`, app(ID, 80, "terminate")],
  [`${ID}-8080.${BASE}`, app(ID, 8080, "terminate")],
  [`${ID}-443.${BASE}`, app(ID, 443, "terminate")],
  [`${ID}s.${BASE}`, app(ID, 443, "passthrough")],
  [`${ID}-5432s.${BASE}`, app(ID, 5432, "passthrough")],
  [`${ID}-80s.${BASE}`, app(ID, 80, "passthrough")],
  [`${ID}g.${BASE}`, app(ID, 80, "h2")],
  // the gateway's own names: never hex, so never an app's
  [`health.${BASE}`, { kind: "self", name: "health" }],
  [`gateway.${BASE}`, { kind: "self", name: "gateway" }],
  [`HEALTH.${BASE}.`, { kind: "self", name: "health" }],
  [`${ID}-50051g.${BASE}`, app(ID, 50051, "h2")],
  [`${ID}-22.${BASE}`, app(ID, 22, "terminate")],
  [`${INST}-8080.${BASE}`, app(INST, 8080, "terminate")],
  [`${INST}-5432s.${BASE}`, app(INST, 5432, "passthrough")],
  [`${INST}-50051g.${BASE}`, app(INST, 50051, "h2")],
  // port bounds
  [`${ID}-1.${BASE}`, app(ID, 1, "terminate")],
  [`${ID}-65535.${BASE}`, app(ID, 65535, "terminate")],
  [`${ID}-65535s.${BASE}`, app(ID, 65535, "passthrough")],
  // dstack compatibility: empty port before the suffix keeps the default
  [`${ID}-s.${BASE}`, app(ID, 443, "passthrough")],
  [`${ID}-g.${BASE}`, app(ID, 80, "h2")],
  // short ids are still hex ids
  [`a.${BASE}`, app("a", 80, "terminate")],
  [`0-1s.${BASE}`, app("0", 1, "passthrough")],
  // case-insensitive; one trailing dot is the same name
  [`${ID.toUpperCase()}-8080S.BASE.Example.COM`, app(ID, 8080, "passthrough")],
  [`${ID}G.${BASE.toUpperCase()}`, app(ID, 80, "h2")],
  [`${ID}-8080.${BASE}.`, app(ID, 8080, "terminate")],
  // look-alike domains are custom domains, never apps
  [`${ID}.xbase.example.com`, custom(`${ID}.xbase.example.com`)],
  ["xbase.example.com", custom("xbase.example.com")],
  [`${ID}.base.example.com.evil.net`, custom(`${ID}.base.example.com.evil.net`)],
  ["example.com", custom("example.com")],
  // custom domains
  ["app.customer.org", custom("app.customer.org")],
  ["WWW.Customer.ORG.", custom("www.customer.org")],
  ["localhost", custom("localhost")],
  ["xn--bcher-kva.example", custom("xn--bcher-kva.example")],
];

const bad: ReadonlyArray<readonly [string, RouteErrorCode]> = [
  // suffixes
  [`${ID}gs.${BASE}`, "E_ROUTE_BAD_SUFFIX"],
  [`${ID}-443gs.${BASE}`, "E_ROUTE_BAD_SUFFIX"],
  [`${ID}-443sg.${BASE}`, "E_ROUTE_BAD_SUFFIX"],
  [`${ID}ss.${BASE}`, "E_ROUTE_BAD_SUFFIX"],
  // ports
  [`${ID}-0.${BASE}`, "E_ROUTE_BAD_PORT"],
  [`${ID}-0s.${BASE}`, "E_ROUTE_BAD_PORT"],
  [`${ID}-65536.${BASE}`, "E_ROUTE_BAD_PORT"],
  [`${ID}-99999.${BASE}`, "E_ROUTE_BAD_PORT"],
  [`${ID}-123456.${BASE}`, "E_ROUTE_BAD_PORT"],
  [`${ID}-.${BASE}`, "E_ROUTE_BAD_PORT"],
  [`${ID}-abc.${BASE}`, "E_ROUTE_BAD_PORT"],
  [`${ID}-08080.${BASE}`, "E_ROUTE_BAD_PORT"],
  [`${ID}-8080-90.${BASE}`, "E_ROUTE_BAD_PORT"],
  [`${ID}-8080x.${BASE}`, "E_ROUTE_BAD_PORT"],
  [`${ID}--80.${BASE}`, "E_ROUTE_BAD_PORT"],
  // empty ids
  [`-80.${BASE}`, "E_ROUTE_EMPTY_ID"],
  [`s.${BASE}`, "E_ROUTE_EMPTY_ID"],
  [`g.${BASE}`, "E_ROUTE_EMPTY_ID"],
  [`-.${BASE}`, "E_ROUTE_EMPTY_ID"],
  [`-443s.${BASE}`, "E_ROUTE_EMPTY_ID"],
  // ids that are not hex
  [`myapp.${BASE}`, "E_ROUTE_BAD_ID"],
  [`xyz-80.${BASE}`, "E_ROUTE_BAD_ID"],
  [`ab_cd.${BASE}`, "E_ROUTE_BAD_ID"],
  // deeper names, the base domain itself
  [`a.b.${BASE}`, "E_ROUTE_TOO_DEEP"],
  [`www.${ID}.${BASE}`, "E_ROUTE_TOO_DEEP"],
  [BASE, "E_ROUTE_BASE_DOMAIN"],
  [`${BASE.toUpperCase()}.`, "E_ROUTE_BASE_DOMAIN"],
  // not a host name at all
  ["", "E_ROUTE_BAD_NAME"],
  [".", "E_ROUTE_BAD_NAME"],
  [`${ID}..${BASE}`, "E_ROUTE_BAD_NAME"],
  [`.${BASE}`, "E_ROUTE_BAD_NAME"],
  [`${BASE}..`, "E_ROUTE_BAD_NAME"],
  [`healths.${BASE}`, "E_ROUTE_BAD_ID"],
  [`gateway-80.${BASE}`, "E_ROUTE_BAD_ID"],
  ["exa mple.com", "E_ROUTE_BAD_NAME"],
  ["bücher.example", "E_ROUTE_BAD_NAME"],
  [`${"a".repeat(64)}.example.com`, "E_ROUTE_BAD_NAME"],
  [`${"abc.".repeat(63)}${BASE}`, "E_ROUTE_BAD_NAME"],
];

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(RouteError);
    return (error as RouteError).code;
  }
  return "no error";
}

describe("compileRouter", () => {
  it("has a table of at least 40 cases", () => {
    expect(ok.length + bad.length).toBeGreaterThanOrEqual(40);
  });

  it.each(ok)("routes %s", (sni, expected) => {
    expect(route(sni)).toEqual(expected);
  });

  it.each(bad)("rejects %j with %s", (sni, code) => {
    expect(codeOf(() => route(sni))).toBe(code);
  });

  it("accepts the base domain with a leading dot, a trailing dot or in upper case", () => {
    for (const baseDomain of [`.${BASE}`, `${BASE}.`, BASE.toUpperCase()]) {
      expect(compileRouter({ baseDomain })(`${ID}s.${BASE}`)).toEqual(app(ID, 443, "passthrough"));
    }
  });

  it("rejects a base domain that is not a host name", () => {
    expect(codeOf(() => compileRouter({ baseDomain: "" }))).toBe("E_ROUTE_BAD_NAME");
    expect(codeOf(() => compileRouter({ baseDomain: "a..b" }))).toBe("E_ROUTE_BAD_NAME");
  });

  it("RouteError is a GatewayError with the code in the name of the failure", () => {
    try {
      route(`${ID}-0.${BASE}`);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(RouteError);
      expect((error as RouteError).name).toBe("RouteError");
      expect((error as RouteError).message).toContain(`${ID}-0`);
    }
  });
});

const modes: readonly RouteMode[] = ["terminate", "passthrough", "h2"];
const arbId = fc.stringMatching(/^[0-9a-f]{1,63}$/);
const arbPort = fc.integer({ min: 1, max: 65535 });
const arbMode = fc.constantFrom(...modes);
const suffix: Record<RouteMode, string> = { terminate: "", passthrough: "s", h2: "g" };

describe("grammar properties", () => {
  it("format then route gives back the same id, port and mode", () => {
    fc.assert(
      fc.property(
        arbId,
        arbPort,
        arbMode,
        fc.boolean(),
        fc.boolean(),
        (id, port, mode, explicit, upper) => {
          const portPart = explicit || port !== DEFAULT_PORT[mode] ? `-${port}` : "";
          const label = `${id}${portPart}${suffix[mode]}`;
          const sni = `${label}.${BASE}`;
          expect(route(upper ? sni.toUpperCase() : sni)).toEqual(app(id, port, mode));
        },
      ),
    );
  });

  it("formatAppLabel is canonical and round-trips through parseAppLabel", () => {
    fc.assert(
      fc.property(arbId, arbPort, arbMode, (id, port, mode) => {
        const label = formatAppLabel({ id, port, mode });
        expect(parseAppLabel(label)).toEqual(app(id, port, mode));
        expect(label.includes("-")).toBe(port !== DEFAULT_PORT[mode]);
      }),
    );
  });

  it("never throws anything but a RouteError, and app routes are always in range", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(..."0123456789abcdefgsxyz-._ABCGS") }),
        (label) => {
          let result: Route;
          try {
            result = route(`${label}.${BASE}`);
          } catch (error) {
            expect(error).toBeInstanceOf(RouteError);
            return;
          }
          if (result.kind === "app") {
            expect(result.id).toMatch(/^[0-9a-f]+$/);
            expect(result.port).toBeGreaterThanOrEqual(1);
            expect(result.port).toBeLessThanOrEqual(65535);
          } else {
            expect(result.name.endsWith(`.${BASE}`)).toBe(false);
          }
        },
      ),
    );
  });

  it("reads a plain lowercase name as it reads the same name with a trailing dot or upper case", () => {
    // The router checks plain lowercase names in a single pass and sends everything else
    // through the general normalising path; both must agree, errors included.
    const outcome = (name: string): unknown => {
      try {
        return route(name);
      } catch (error) {
        return (error as RouteError).code;
      }
    };
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(..."0123456789abcdefgsxyz-._."), maxLength: 70 }),
        (label) => {
          const name = `${label}.${BASE}`;
          const expected = outcome(name);
          expect(outcome(`${name}.`)).toEqual(expected);
          expect(outcome(name.toUpperCase())).toEqual(expected);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
