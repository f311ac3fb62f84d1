import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ENGINES, curl, type ProxyLab, startProxyLab, TEST_DOMAIN } from "./harness.js";

describe.each(ENGINES)("on the %s engine", (engine) => {
  let lab: ProxyLab;
  const ACCOUNT = "https://acme.test.example/acct/42";

  beforeAll(async () => {
    lab = await startProxyLab(
      {
        "core.certbot.account_url": ACCOUNT,
        "core.certbot.account_key":
          "-----BEGIN PRIVATE KEY-----\nunused\n-----END PRIVATE KEY-----\n",
      },
      { engine },
    );
  });
  afterAll(async () => {
    await lab?.close();
  });

  /** Status and body of one request to the gateway's own name, over the real proxy. */
  async function get(host: string, path: string, extra: string[] = []) {
    const r = await curl(lab, `${host}.${TEST_DOMAIN}`, path, ["-w", "\n%{http_code}", ...extra]);
    const lines = r.stdout.split("\n");
    return { status: Number(lines.pop()), body: lines.join("\n") };
  }

  describe("the gateway's own names (health.<base>, gateway.<base>)", () => {
    it("health answers GET / and GET /health with 200, and nothing else", async () => {
      expect(await get("health", "/")).toEqual({ status: 200, body: "" });
      expect(await get("health", "/health")).toEqual({ status: 200, body: "" });
      expect((await get("health", "/other")).status).toBe(404);
      expect((await get("health", "/health", ["-X", "POST"])).status).toBe(405);
    });

    it("gateway answers /health and serves dstack's /.dstack/index and /.dstack/acme-info", async () => {
      expect(await get("gateway", "/health")).toEqual({ status: 200, body: "" });
      const index = await get("gateway", "/.dstack/index");
      expect(JSON.parse(index.body)).toEqual({
        type: "dstack gateway",
        paths: ["/index", "/acme-info"],
      });
      const acme = await get("gateway", "/.dstack/acme-info");
      expect(JSON.parse(acme.body)).toEqual({
        account_uri: ACCOUNT,
        quoted_hist_keys: [],
        account_quote: "",
        account_attestation: "",
      });
      expect((await get("gateway", "/")).status).toBe(404);
    });

    it("keeps a connection alive for several requests, served with the gateway's certificate", async () => {
      const host = `health.${TEST_DOMAIN}`;
      const url = `https://${host}:${lab.port}/health`;
      const r = await curl(lab, host, "/health", ["-w", "%{http_code} %{num_connects}\n", url]);
      expect(r.stdout.trim().split("\n")).toEqual(["200 1", "200 0"]);
    });
  });
});
