// End to end on the local lab (npm run lab): the region the Pulumi program deploys, exercised
// with real clients from this machine. Brings the lab up if it is not, and down again after.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { request, run } from "../helpers/lab-client.js";
import {
  ctx,
  curl,
  eventually,
  type LabInfo,
  lab$,
  openTls,
  register,
  restartGateway,
  ROOT,
  ssh,
  stopAgent,
  useLab,
} from "./lab-setup.js";
import { dashboardSuite } from "./dashboard-suite.js";
import { admin, onEngine, routeSuite, sample } from "./route-suite.js";
import { regionFaultSuite, regionSuite } from "./region-suite.js";
import { regionRolloutSuite, rolloutSuite } from "./rollout-suite.js";

useLab();
let lab: LabInfo;
let app = "";
let gw = "";
beforeAll(() => {
  ({ lab, app, gw } = ctx);
});

routeSuite("node");

describe("the lab region, deployed by the Pulumi program", () => {
  it("wrote lab.json with the gateway's addresses and both instances", () => {
    expect(lab.gateway).toEqual({
      https: `${gw}:443`,
      http: `${gw}:80`,
      rpc: `${gw}:8000`,
      admin: expect.any(String),
    });
    expect(lab.apps[0]?.instanceIds).toHaveLength(2);
  });
});

describe("the admin API on the gateway host", () => {
  it("counts the traffic over both proxy workers and shows the instances and certificate", async () => {
    const total = `gateway_connections_total{app="${app}"}`;
    const before = sample(await admin("metrics"), total) ?? 0;
    for (let k = 0; k < 3; k++) expect((await curl(`${app}-8080`)).out).toContain("8080 GET");
    const text = await admin("metrics");
    expect(sample(text, total)).toBe(before + 3);
    expect(sample(text, 'gateway_proxy_workers{state="running"}')).toBe(2);
    expect(sample(text, 'gateway_proxy_workers{state="answered"}')).toBe(2);
    expect(sample(text, `gateway_instances{app="${app}"}`)).toBe(2);
    expect(sample(text, `gateway_healthy_instances{app="${app}"}`)).toBe(2);
    expect(sample(text, "gateway_certbot_consecutive_failures")).toBe(0);
    const expiry =
      /^gateway_certificate_expiry_timestamp_seconds\{serial="[0-9A-F]+"\} (\d+)$/m.exec(text);
    expect(Number(expiry?.[1]) * 1000).toBeGreaterThan(Date.now());
    const status = JSON.parse(await admin("Status")) as {
      hosts: { instance_id: string; app_id: string }[];
    };
    const ids = status.hosts.filter((h) => h.app_id === app).map((h) => h.instance_id);
    expect(ids.sort()).toEqual([...(lab.apps[0]?.instanceIds ?? [])].sort());
  }, 60_000);

  it("refuses a caller without the region's token, and does nothing it asked", async () => {
    const r = await ssh(
      "curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:8001/prpc/Admin.RenewCert",
    );
    expect(r.out).toBe("401");
  });

  it("the host setup applied the kernel settings, and keeps them for boot", async () => {
    // The gateway host is a network namespace: these are its own, not this machine's.
    const r = await ssh("cat /proc/sys/net/ipv4/tcp_tw_reuse /etc/sysctl.d/60-gateway.conf");
    expect(r.code).toBe(0);
    expect(r.out.split("\n")[0]).toBe("1");
    expect(r.out).toContain("\nnet.ipv4.tcp_tw_reuse = 1\n");
  });

  it("the gateway and the CVM agents run on the pinned Node (.node-version)", async () => {
    const pinned = `v${readFileSync(`${ROOT}.node-version`, "utf8").trim()}`;
    // The binary the running gateway was started from, asked for its version on the host.
    const r = await ssh(
      'node --version; "/proc/$(cat /run/lab-units/gateway.service.pid)/exe" --version',
    );
    expect(r.code).toBe(0);
    expect(r.out.trim().split("\n")).toEqual([pinned, pinned]);
    const cvms = JSON.parse(readFileSync(`${ROOT}.lab/cvms.json`, "utf8")) as {
      agentPid: number;
    }[];
    for (const cvm of cvms) {
      const agent = await run(`/proc/${cvm.agentPid}/exe`, ["--version"]);
      expect(agent.out.trim()).toBe(pinned);
    }
  });

  it("is not reachable from outside the gateway host", async () => {
    const r = await run("curl", ["-sS", "--max-time", "3", `http://${gw}:8001/metrics`]);
    expect(r.code).not.toBe(0);
  });
});

describe("dstack's seed domain layout: rpc_domain outside *.<base_domain>", () => {
  it("the RPC port serves a chain valid for rpc_domain, whose A and CAA records the program wrote", async () => {
    expect(lab.rpcDomain.endsWith(`.${lab.baseDomain}`)).toBe(false);
    const health = await run("curl", [
      ...["-sS", "--max-time", "10", "--cacert", lab.caFile],
      ...["--resolve", `${lab.rpcDomain}:8000:${gw}`, `https://${lab.rpcDomain}:8000/health`],
    ]);
    expect(health.code, health.err).toBe(0);
    expect(health.out).toBe("OK");
    const dig = async (type: string) =>
      (await run("dig", ["+short", "+time=2", "@10.99.0.1", type, lab.rpcDomain])).out.trim();
    expect(await dig("A")).toBe(gw);
    const acme = JSON.parse((await curl("gateway", "/.dstack/acme-info")).out) as {
      account_uri: string;
    };
    expect(await dig("CAA")).toContain(`accounturi=${acme.account_uri}`);
  });

  it("a CVM registers through it, verifying the certificate for rpc_domain", async () => {
    const r = await register(gw);
    expect(r.status, r.body).toBe(200);
    // The agents of the lab's CVMs registered the same way (lab/cvms.ts: --servername).
    const agents = await run("pgrep", ["-af", "gateway.mjs agent"]);
    expect(agents.out.match(new RegExp(`--servername ${lab.rpcDomain} `, "g"))).toHaveLength(2);
  });
});

describe("operations on the lab", () => {
  it("a forced renewal swaps the certificate and drops none of 20 open connections", async () => {
    const open = await Promise.all(Array.from({ length: 20 }, () => openTls(`${app}-8080`)));
    const before = open[0]?.getPeerCertificate().serialNumber;
    const r = await ssh("kill -USR2 $(cat /run/lab-units/gateway.service.pid)");
    expect(r.code).toBe(0);
    let fresh = "";
    await eventually("a new serial on new connections", async () => {
      const s = await openTls(`${app}-8080`);
      fresh = s.getPeerCertificate().serialNumber;
      s.destroy();
      return fresh !== before;
    });
    const replies = await Promise.all(open.map((s, k) => request(s, `/still/${k}`)));
    for (const [k, reply] of replies.entries())
      expect(reply).toMatch(new RegExp(`8080 GET /still/${k} 0`));
    for (const s of open) s.destroy();
  }, 60_000);

  it("the gateway restarted keeps its state: the instances answer again without registering anew", async () => {
    const before = await ssh("cat /var/lib/gateway/state.json");
    const r = await restartGateway(gw);
    expect(r.code).toBe(0);
    await eventually(
      "the restarted gateway to route again",
      async () => (await curl(`${app}-8080`)).out.includes("8080 GET"),
      60_000,
    );
    const after = await ssh("cat /var/lib/gateway/state.json");
    const ips = (text: string) =>
      (JSON.parse(text) as { instances: { ip: string }[] }).instances.map((i) => i.ip).sort();
    expect(ips(after.out)).toEqual(ips(before.out));
  }, 90_000);

  it("an operator's port policy holds across a gateway restart: a closed port is refused, an open one served", async () => {
    const ids = lab.apps[0]?.instanceIds ?? [];
    const admin = (call: string, body: object) =>
      ssh(`node /opt/gateway/gateway.mjs admin ${call} '${JSON.stringify(body)}'`);
    const only8080 = { restrict_mode: true, ports: [{ port: 8080, pp: false }] };
    for (const id of ids) {
      const r = await admin("SetInstancePortPolicy", { instance_id: id, policy: only8080 });
      expect(r.code, r.err).toBe(0);
    }
    try {
      expect((await restartGateway(gw)).code).toBe(0);
      await eventually(
        "the restarted gateway to route 8080 again",
        async () => (await curl(`${app}-8080`)).out.includes("8080 GET"),
        60_000,
      );
      const closed = await curl(app, "/", ["-o", "/dev/null", "-w", "%{http_code}"]);
      expect(closed.code).not.toBe(0);
      const view = JSON.parse(
        (await admin("GetInstancePortPolicy", { instance_id: ids[0] })).out,
      ) as { source: string };
      expect(view.source).toBe("admin");
    } finally {
      for (const id of ids) await admin("ClearInstancePortPolicy", { instance_id: id });
    }
    await eventually(
      "port 80 open again",
      async () => (await curl(app, "/")).out.includes(" 80 GET /"),
      10_000,
    );
  }, 120_000);

  it("failover: with one CVM's tunnel down, all traffic goes to the other", async () => {
    const [i1, i2] = lab.apps[0]?.instanceIds ?? [];
    await stopAgent(i1 ?? "");
    for (let k = 0; k < 6; k++)
      expect((await curl(`${app}-8080`, `/f${k}`)).out).toMatch(
        new RegExp(`^${i2} 8080 GET /f${k}`),
      );
    const again = await lab$("up"); // idempotent: only the stopped agent starts again
    expect(again.code).toBe(0);
    expect(again.out).toContain("starting the agent");
  }, 120_000);
});

dashboardSuite();
rolloutSuite("node");
onEngine("haproxy", () => {
  routeSuite("haproxy");
  rolloutSuite("haproxy");
});

describe("the lab deploys through the recording engine (pulumi preview, then up)", () => {
  const gatewayPid = async () => (await ssh("cat /run/lab-units/gateway.service.pid")).out.trim();
  const deployLines = (out: string) =>
    out.split("\n").filter((l) => /^lab: {3}(create|update|replace|delete) /.test(l));

  it("a second run with no change touches nothing: every step is the same, the gateway keeps running", async () => {
    const pid = await gatewayPid();
    const r = await lab$("up");
    expect(r.code).toBe(0);
    expect(r.out).toContain("lab: deploy (preview): no changes, 21 unchanged");
    expect(r.out).toContain("lab: deploy (up): no changes, 21 unchanged");
    expect(deployLines(r.out)).toEqual([]);
    expect(await gatewayPid()).toBe(pid);
  }, 180_000);

  it("one changed key replaces just the config and restart steps, and the gateway restarts with it", async () => {
    const pid = await gatewayPid();
    const r = await lab$("up", "--set", "gateway:config.core.proxy.timeouts.idle=7m");
    expect(r.code).toBe(0);
    expect(deployLines(r.out)).toEqual([
      "lab:   replace (preview)  lab-gw1-config (triggers)",
      "lab:   replace (preview)  lab-gw1-restart (triggers)",
      "lab:   replace            lab-gw1-config (triggers)",
      "lab:   replace            lab-gw1-restart (triggers)",
    ]);
    // Create before delete, as the engine replaces: the old steps go once the new ones ran.
    expect(r.out).toMatch(/lab: {3}delete-replaced +lab-gw1-restart\n/);
    expect(r.out).toContain("lab: deploy (up): 2 to replace, 19 unchanged");
    expect(
      (await ssh("grep -A8 '^\\[core.proxy.timeouts\\]' /etc/gateway/gateway.toml")).out,
    ).toMatch(/^idle = "7m"$/m);
    expect(await gatewayPid()).not.toBe(pid);
    await eventually("the restarted gateway to route", async () =>
      (await curl(`${app}-8080`)).out.includes("8080 GET"),
    );
    const back = await lab$("up");
    expect(back.code).toBe(0);
    expect(back.out).toContain("lab: deploy (up): 2 to replace, 19 unchanged");
  }, 300_000);

  it("destroy deletes through the same path: every record leaves BIND, the unit's delete stops the gateway", async () => {
    const dig = (name: string, type: string) =>
      run("dig", ["+short", "+time=2", "@10.99.0.1", type, name]).then((r) => r.out.trim());
    expect(await dig(`*.${lab.baseDomain}`, "A")).toBe(gw);
    const r = await lab$("destroy");
    expect(r.code).toBe(0);
    expect(r.out).toContain("lab: deploy (destroy): 21 to delete, 0 unchanged");
    for (const [name, type] of [
      [`*.${lab.baseDomain}`, "A"],
      [lab.baseDomain, "A"],
      [lab.baseDomain, "CAA"],
      [lab.rpcDomain, "A"],
      [lab.rpcDomain, "CAA"],
      [`_dstack-app-address.${lab.customDomain}`, "TXT"],
    ] as const) {
      expect(await dig(name, type), `${name} ${type}`).toBe("");
    }
    expect((await ssh("systemctl is-active gateway.service")).out.trim()).toBe("inactive");
    const again = await lab$("destroy");
    expect(again.out).toContain("lab: deploy (destroy): no changes, 0 unchanged");
  }, 180_000);
});

// Last: the same lab, grown into a region of three hosts (it goes down and up again first), on
// each engine in turn. The broken build's rollout runs on the HAProxy region only: that build
// dies before it reads its config, so the gates it tests are the same on both engines, and on
// HAProxy the rollback also meets a HAProxy the dead generation left behind.
for (const engine of ["node", "haproxy"] as const) {
  regionSuite(engine);
  if (engine === "haproxy") regionRolloutSuite(engine);
  regionFaultSuite(engine);
}
