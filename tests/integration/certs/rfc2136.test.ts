/**
 * The RFC 2136 provider against a real BIND (named) with TSIG: records are read back with dig.
 */
import { once } from "node:events";
import { connect, createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Rfc2136Provider } from "../../../gateway-runtime/certs/dns/rfc2136/provider.js";
import { CertError } from "../../../gateway-runtime/certs/errors.js";
import { type BindServer, startBind } from "../../helpers/bind.js";

const ZONE = "app.test.example";
const NAME = `_acme-challenge.${ZONE}`;
let bind: BindServer;
let bind512: BindServer;

beforeAll(async () => {
  [bind, bind512] = await Promise.all([
    startBind({
      zone: ZONE,
      records: [
        '_acme-challenge IN TXT "someone-else"',
        '@ IN CAA 0 iodef "mailto:sec@app.test.example"',
      ],
    }),
    startBind({ zone: ZONE, algorithm: "hmac-sha512" }),
  ]);
});
afterAll(async () => {
  await bind?.close();
  await bind512?.close();
});

const provider = (
  b: BindServer,
  over: Partial<ConstructorParameters<typeof Rfc2136Provider>[0]> = {},
) =>
  new Rfc2136Provider({
    server: b.address,
    zone: b.zone,
    keyName: b.keyName,
    algorithm: b.algorithm,
    secret: b.secret,
    ...over,
  });

const rejection = async (p: Promise<unknown>): Promise<CertError> => {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(CertError);
  return e as CertError;
};

describe("RFC 2136 against BIND", () => {
  it("adds TXT values and removes only its own", async () => {
    const p = provider(bind);
    await p.setTxt(NAME, "wildcard-token");
    await p.setTxt(NAME, "apex-token");
    await p.setTxt(NAME, "apex-token"); // idempotent
    expect((await bind.dig(NAME, "TXT")).sort()).toEqual([
      "apex-token",
      "someone-else",
      "wildcard-token",
    ]);
    await p.removeTxt(NAME, "wildcard-token");
    expect((await bind.dig(NAME, "TXT")).sort()).toEqual(["apex-token", "someone-else"]);
    await p.removeTxt(NAME, "apex-token");
    await p.removeTxt(NAME, "was-never-there");
    expect(await bind.dig(NAME, "TXT")).toEqual(["someone-else"]);
  });

  it("stores values longer than one character-string", async () => {
    const long = "x".repeat(300);
    await provider(bind).setTxt(`long.${ZONE}`, long);
    expect(await bind.dig(`long.${ZONE}`, "TXT")).toEqual([long]);
  });

  it("replaces the whole CAA set in one update and lists it", async () => {
    const p = provider(bind);
    const set = [
      {
        flags: 0,
        tag: "issue",
        value: "ca.example; accounturi=https://ca.example/acct/1; validationmethods=dns-01",
      },
      {
        flags: 0,
        tag: "issuewild",
        value: "ca.example; accounturi=https://ca.example/acct/1; validationmethods=dns-01",
      },
    ];
    await p.setCaa(ZONE, set);
    expect((await bind.dig(ZONE, "CAA")).sort()).toEqual(
      set.map((r) => `0 ${r.tag} "${r.value}"`).sort(),
    );
    expect(await p.listCaa(ZONE)).toEqual(expect.arrayContaining(set));
    await p.setCaa(ZONE, [set[0] as (typeof set)[0]]);
    expect(await bind.dig(ZONE, "CAA")).toEqual([`0 issue "${set[0]?.value}"`]);
    expect(await p.listCaa(`nothing.${ZONE}`)).toEqual([]);
  });

  it("signs with hmac-sha512", async () => {
    const p = provider(bind512);
    await p.setTxt(NAME, "sha512");
    expect(await bind512.dig(NAME, "TXT")).toEqual(["sha512"]);
  });

  it.each([
    ["a wrong secret", { secret: Buffer.alloc(32, 1).toString("base64") }, /NOTAUTH.*BADSIG/],
    ["an unknown key", { keyName: "nobody" }, /NOTAUTH.*BADKEY/],
    ["the wrong algorithm", { algorithm: "hmac-sha512" as const }, /NOTAUTH.*BAD(SIG|KEY)/],
  ])("reports %s as E_CERT_DNS and changes nothing", async (_what, over, message) => {
    const e = await rejection(provider(bind, over).setTxt(NAME, "forged"));
    expect(e.code).toBe("E_CERT_DNS");
    expect(e.message).toMatch(message);
    expect(await bind.dig(NAME, "TXT")).toEqual(["someone-else"]);
  });

  it("refuses names outside its zone without sending anything", async () => {
    const e = await rejection(provider(bind).setTxt("_acme-challenge.other.example", "x"));
    expect(e.code).toBe("E_CERT_CONFIG");
  });

  it("rejects an answer altered on the way (TSIG of the answer)", async () => {
    // A TCP relay that flips the (reserved) Z bit of the answer: rcode stays NOERROR, but
    // BIND's signature no longer matches, so only the TSIG check can catch it.
    const relay: Server = createServer((client) => {
      const upstream = connect(bind.port, "127.0.0.1");
      client.pipe(upstream);
      let first = true;
      upstream.on("data", (chunk: Buffer) => {
        if (first && chunk.length > 5) {
          chunk[5] = (chunk[5] as number) ^ 0x40; // second flags octet, after the 2-octet length
          first = false;
        }
        client.write(chunk);
      });
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
      client.on("close", () => upstream.destroy());
    });
    relay.listen(0, "127.0.0.1");
    await once(relay, "listening");
    const port = (relay.address() as { port: number }).port;
    try {
      const e = await rejection(
        provider(bind, { server: `127.0.0.1:${port}` }).setTxt(`relay.${ZONE}`, "v"),
      );
      expect(e.message).toMatch(/the answer's TSIG MAC does not verify/);
    } finally {
      relay.close();
    }
  });

  it("fails fast with E_CERT_DNS when the server is down, and works again after a restart", async () => {
    const b = await startBind({ zone: ZONE });
    try {
      await b.stop();
      const started = Date.now();
      const e = await rejection(provider(b).setTxt(NAME, "x"));
      expect(e.code).toBe("E_CERT_DNS");
      expect(e.message).toMatch(/ECONNREFUSED/);
      expect(Date.now() - started).toBeLessThan(2000);
      await b.start();
      await provider(b).setTxt(NAME, "after-restart");
      expect(await b.dig(NAME, "TXT")).toEqual(["after-restart"]);
    } finally {
      await b.close();
    }
  });

  it("times out on a server that accepts but never answers", async () => {
    const mute = createServer(() => {});
    mute.listen(0, "127.0.0.1");
    await once(mute, "listening");
    try {
      const port = (mute.address() as { port: number }).port;
      const e = await rejection(
        provider(bind, { server: `127.0.0.1:${port}`, timeoutMs: 300 }).setTxt(NAME, "x"),
      );
      expect(e.message).toMatch(/no DNS answer .* within 300 ms/);
    } finally {
      mute.close();
    }
  });
});
