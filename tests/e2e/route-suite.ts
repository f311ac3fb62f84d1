// Every URL form through the lab, on either data plane engine (core.proxy.engine): lab.test.ts
// runs it on the Node engine first, then again inside onEngine("haproxy"), which brings the lab
// up with `--engine haproxy` and goes back to the Node engine after, as the suites after it
// expect. Not a test file.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { sshOptions } from "../../lab/host.js";
import { run } from "../helpers/lab-client.js";
import {
  ctx,
  curl,
  deployKey,
  eventually,
  host,
  labUp,
  restartGateway,
  sClient,
  ssh,
} from "./lab-setup.js";

export type LabEngine = "node" | "haproxy";

/** `gateway admin <call>` on the lab's host (the program's token, from the host's config). */
export async function admin(call: string): Promise<string> {
  const r = await ssh(`node /opt/gateway/gateway.mjs admin ${call}`);
  expect(r.code, r.err).toBe(0);
  return r.out;
}

/** The value of one series in a Prometheus text exposition. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Whether the engine's HAProxy runs on the lab's host, by its pid file (others may run here). */
async function haproxyRuns(): Promise<boolean> {
  const script =
    "p=$(cat /var/lib/gateway/haproxy/haproxy.pid 2>/dev/null) && grep -qa haproxy /proc/$p/cmdline && echo yes || echo no";
  return (await ssh(script)).out.trim() === "yes";
}

/**
 * Runs the suites `body` declares with the lab's host on `engine`, and puts the Node engine
 * back after them. On the Node engine a HAProxy left by a haproxy-engine generation is retired:
 * it exits once its connections end.
 */
export function onEngine(engine: LabEngine, body: () => void): void {
  describe(`on the ${engine} engine`, () => {
    beforeAll(async () => {
      if (engine !== "node") await labUp("--engine", engine);
      await eventually(
        `HAProxy to ${engine === "haproxy" ? "serve" : "be gone"} on the gateway host`,
        async () => (await haproxyRuns()) === (engine === "haproxy"),
      );
    }, 300_000);
    afterAll(async () => {
      if (engine !== "node") await labUp("--engine", "node");
    }, 300_000);
    body();
  });
}

export function routeSuite(engine: LabEngine): void {
  describe(`every URL form through the ${engine} engine`, () => {
    let app = "";
    let gw = "";
    beforeAll(() => {
      ({ app, gw } = ctx);
    });

    it("<app-id> and <app-id>-<port>: termination with the pebble-issued wildcard certificate", async () => {
      expect((await curl(app, "/a")).out).toMatch(/^c[12]\S+ 80 GET \/a 0/);
      expect((await curl(`${app}-8080`, "/b")).out).toMatch(/^c[12]\S+ 8080 GET \/b 0/);
    });

    it("<instance-id>-<port>: that instance", async () => {
      const [i1, i2] = ctx.lab.apps[0]?.instanceIds ?? [];
      expect((await curl(`${i1}-8080`)).out).toMatch(new RegExp(`^${i1} 8080`));
      expect((await curl(`${i2}-8080`)).out).toMatch(new RegExp(`^${i2} 8080`));
    });

    it("<app-id>s and <app-id>-<port>s: passthrough to the CVM's own certificate", async () => {
      const r = await sClient(host(`${app}-8443s`), "ping\n", { verify: true });
      expect(r.out).toContain("Verification: OK");
      expect(r.out).toMatch(/c[12]\S+ tls 8443 \S+: ping/);
      const d = await sClient(host(`${app}s`), "x\n");
      expect(d.out).toMatch(/tls 443 /);
    });

    it("<app-id>-<port>g: HTTP/2 (curl)", async () => {
      const r = await curl(`${app}-50051g`, "/pkg.Svc/Call", ["--http2", "-w", " %{http_version}"]);
      expect(r.out).toMatch(/h2 \/pkg\.Svc\/Call\n 2$/);
    });

    it("a WebSocket echoes through termination", async () => {
      const name = host(`${app}-8080`);
      const options = {
        ca: readFileSync(ctx.lab.caFile),
        servername: name,
        headers: { host: name },
      };
      const ws = new WebSocket(
        `wss://${gw}/ws`,
        options as ConstructorParameters<typeof WebSocket>[2],
      );
      const echoed = await new Promise<string>((resolve, reject) => {
        ws.once("open", () => ws.send("through the lab"));
        ws.once("message", (d) => resolve(d.toString()));
        ws.once("error", reject);
      });
      ws.close();
      expect(echoed).toBe("through the lab");
    });

    it("<app-id>-22: ssh to a CVM with openssl s_client as ProxyCommand", async () => {
      const proxy = `openssl s_client -quiet -verify_return_error -connect ${gw}:443 -servername ${host(`${app}-22`)} -CAfile ${ctx.lab.caFile}`;
      const r = await run("ssh", [
        "-o",
        `ProxyCommand=${proxy}`,
        ...sshOptions(deployKey),
        "root@cvm",
        "echo ssh-ok",
      ]);
      expect(r.out.trim()).toBe("ssh-ok");
    });

    it("port 80 redirects to https", async () => {
      const r = await run("curl", [
        "-si",
        "--max-time",
        "5",
        "-H",
        `host: ${host(app)}`,
        `http://${gw}/p?q=1`,
      ]);
      expect(r.out).toMatch(/^HTTP\/1\.1 308/);
      expect(r.out).toContain(`location: https://${host(app)}/p?q=1`);
    });

    it("a custom domain routes by the TXT record GatewayDns wrote to the lab DNS", async () => {
      const r = await sClient(ctx.lab.customDomain, "order\n", { verify: true });
      expect(r.out).toContain("Verification: OK");
      expect(r.out).toMatch(
        new RegExp(`tls 8443 ${ctx.lab.customDomain.replaceAll(".", "\\.")}: order`),
      );
    });

    it("a wildcard custom domain: one TXT record routes every name one label below it", async () => {
      for (const name of ["north.stores.customer.lab.test", "south.stores.customer.lab.test"]) {
        const r = await sClient(name, "order\n");
        expect(r.out).toContain(`tls 8443 ${name}: order`);
      }
    });

    it("health.<base>/health answers 200, and gateway.<base> names the region's ACME account", async () => {
      const health = await curl("health", "/health", ["-o", "/dev/null", "-w", "%{http_code}"]);
      expect(health.out).toBe("200");
      const acme = JSON.parse((await curl("gateway", "/.dstack/acme-info")).out) as {
        account_uri: string;
      };
      expect(acme.account_uri).toMatch(/^https:\/\/10\.99\.0\.1:14000\/my-account\/\w+$/);
    });

    if (engine === "haproxy")
      it("a stopped gateway stops its HAProxy: no next generation adopts it", async () => {
        const units = "gateway-tls.socket gateway-http.socket gateway-rpc.socket gateway.service";
        const stopped = await ssh(`systemctl stop ${units}`);
        expect(stopped.code, stopped.err).toBe(0);
        // The watcher waits 30 s for a next generation (NEXT_GENERATION_WAIT_MS), then stops it.
        await eventually("HAProxy to stop", async () => !(await haproxyRuns()), 60_000);
        const started = await ssh(`systemctl start ${units}`);
        expect(started.code, started.err).toBe(0);
        const ready = await restartGateway(ctx.gw);
        expect(ready.code, ready.err).toBe(0);
        await eventually("HAProxy to serve again", haproxyRuns);
        expect((await curl(`${app}-8080`, "/again")).out).toMatch(/8080 GET \/again/);
      }, 120_000);

    it("the admin API counts the connections this engine carried, per app", async () => {
      const total = `gateway_connections_total{app="${app}"}`;
      const before = sample(await admin("metrics"), total) ?? 0;
      for (let k = 0; k < 3; k++) expect((await curl(`${app}-8080`)).out).toContain("8080 GET");
      expect(sample(await admin("metrics"), total)).toBe(before + 3);
    }, 60_000);
  });
}
