// The lab as a region of three gateway hosts sharing state through etcd (npm run lab -- up
// --hosts 3): every host serves every app, and the region survives the faults of issue #18.
// Not a test file: lab.test.ts calls regionSuite() after the one-host suite, so one lab at a
// time runs, as the namespaces and ports are fixed.
import { readFileSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import { beforeAll, describe, expect, it } from "vitest";
import { LAB } from "../../lab/state.js";
import { request, run } from "../helpers/lab-client.js";
import {
  addressOf,
  ctx,
  curlVia,
  eventually,
  type LabCvmRecord,
  lab$,
  labUp,
  openTls,
  register,
  sClient,
  sshTo,
  stopAgent,
} from "./lab-setup.js";
import type { LabEngine } from "./route-suite.js";

const hosts = () => ctx.lab.gateways.map(addressOf);
/** Namespaces of the second and third gateway hosts, which the fault tests break. */
const LAB_NS = { second: LAB.gateways[1].ns, third: LAB.gateways[2].ns };

/** The serial of the certificate the gateway host at `address` serves for the app. */
function servedSerial(address: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({
      host: address,
      port: 443,
      servername: `${ctx.app}.${ctx.lab.baseDomain}`,
      ca: readFileSync(ctx.lab.caFile),
    });
    s.once("secureConnect", () => {
      resolve(s.getPeerCertificate().serialNumber);
      s.destroy();
    });
    s.once("error", reject);
    s.setTimeout(10_000, () => s.destroy(new Error(`TLS to ${address} timed out`)));
  });
}

/** The WireGuard addresses of the peers of the gateway host at `address`, sorted. */
async function peerIps(address: string): Promise<string[]> {
  const r = await sshTo(address, "wg show wg-lab allowed-ips");
  expect(r.code, r.err).toBe(0);
  return r.out
    .split("\n")
    .flatMap((line) => line.split(/\s+/).slice(1))
    .filter((ip) => ip.endsWith("/32"))
    .sort();
}

/** `gateway admin <call> [body]` on the gateway host at `address`; its output. */
async function adminOn(address: string, call: string, body?: object): Promise<string> {
  const arg = body === undefined ? "" : ` '${JSON.stringify(body)}'`;
  const r = await sshTo(address, `node /opt/gateway/gateway.mjs admin ${call}${arg}`);
  expect(r.code, `${call}: ${r.err}`).toBe(0);
  return r.out;
}

/** Every host routes `<instance>-8080` to each lab instance. */
async function everyHostRoutes(): Promise<void> {
  for (const address of hosts())
    for (const id of ctx.lab.apps[0]?.instanceIds ?? [])
      expect((await curlVia(address, `${id}-8080`, "/r")).out).toMatch(
        new RegExp(`^${id} 8080 GET /r`),
      );
}

export function regionSuite(engine: LabEngine): void {
  describe(`a region of three gateway hosts (npm run lab -- up --hosts 3 --engine ${engine})`, () => {
    beforeAll(async () => {
      // A fresh region: the one-host lab's registrations are in its state file, not in etcd.
      const down = await lab$("down");
      expect(down.code, down.err).toBe(0);
      await labUp("--hosts", "3", "--engine", engine);
    }, 600_000);

    it("lab.json lists the three hosts, the first being `gateway`", () => {
      expect(hosts()).toEqual(["10.99.0.2", "10.99.0.3", "10.99.0.4"]);
      expect(ctx.lab.gateways[0]).toEqual(ctx.lab.gateway);
    });

    it("CVMs registered through the first host are served through every host, in every URL form", async () => {
      await everyHostRoutes();
      for (const address of hosts()) {
        expect((await curlVia(address, ctx.app, "/a")).out).toMatch(/^c[12]\S+ 80 GET \/a/);
        const h2 = await curlVia(address, `${ctx.app}-50051g`, "/pkg.Svc/Call", ["--http2"]);
        expect(h2.out).toMatch(/h2 \/pkg\.Svc\/Call/);
        const passthrough = await sClient(`${ctx.app}-8443s.${ctx.lab.baseDomain}`, "ping\n", {
          verify: true,
          via: address,
        });
        expect(passthrough.out).toMatch(/c[12]\S+ tls 8443 \S+: ping/);
      }
    }, 60_000);

    it("every host serves the one region certificate", async () => {
      const serials = await Promise.all(hosts().map(servedSerial));
      expect(new Set(serials).size).toBe(1);
    });

    it("every host's WireGuard peers are the region's instances", async () => {
      const sets = await Promise.all(hosts().map(peerIps));
      expect(sets[0]).toHaveLength(2);
      for (const set of sets) expect(set).toEqual(sets[0]);
    });

    it("Admin.Status on every host lists the region's three nodes, all up", async () => {
      for (const address of hosts()) {
        const status = JSON.parse(await adminOn(address, "Status")) as {
          nodes: { name: string; status: string; wg_peer: { endpoint: string } }[];
        };
        expect(status.nodes.map((n) => [n.name, n.status]).sort()).toEqual([
          ["gw1", "up"],
          ["gw2", "up"],
          ["gw3", "up"],
        ]);
      }
    });

    it("a draining host refuses registrations, leaves the others' server lists and fails its health name, until it is up again", async () => {
      const [first, , third] = hosts();
      const health = (address: string) =>
        curlVia(address, "health", "/health", ["-o", "/dev/null", "-w", "%{http_code}"]);
      await adminOn(first ?? "", "SetNodeStatus", { name: "gw3", status: "down" });
      try {
        await eventually("gw3 to answer 503 on its health name", async () => {
          return (await health(third ?? "")).out === "503";
        });
        expect((await health(first ?? "")).out).toBe("200");
        const refused = await register(third ?? "");
        expect(refused.status).toBe(503);
        expect(codeOf(refused.body)).toBe("E_NODE_DRAINING");
        const accepted = await register(first ?? "");
        expect(accepted.status, accepted.body).toBe(200);
        const servers = (JSON.parse(accepted.body) as { wg: { servers: { endpoint: string }[] } })
          .wg.servers;
        expect(servers.map((s) => s.endpoint.split(":")[0]).sort()).toEqual([
          "10.99.0.2",
          "10.99.0.3",
        ]);
        // Traffic through it is still served: draining stops new registrations, not clients.
        await everyHostRoutes();
      } finally {
        await adminOn(first ?? "", "SetNodeStatus", { name: "gw3", status: "up" });
      }
      await eventually(
        "gw3 to answer 200 again",
        async () => (await health(third ?? "")).out === "200",
      );
    }, 60_000);

    it("a registration through one host is a peer of every other host within a second or so", async () => {
      const r = await register(hosts()[2] ?? "");
      expect(r.status, r.body).toBe(200);
      const ip = (JSON.parse(r.body) as { wg: { client_ip: string } }).wg.client_ip;
      for (const address of hosts())
        await eventually(
          `${address} to have peer ${ip}`,
          async () => (await peerIps(address)).includes(`${ip}/32`),
          5_000,
        );
    }, 30_000);
  });
}

/** The first registration-like line of an error answer: its stable code. */
const codeOf = (body: string) => /"(E_[A-Z_]+)"/.exec(body)?.[1] ?? body.slice(0, 200);

/**
 * `systemctl <verb> gateway-etcd` on the gateway host at `address`, then waits until its client
 * port refuses (stop) or accepts (start): a test of a lost member must have lost it.
 */
async function etcdMember(address: string, verb: "start" | "stop"): Promise<void> {
  const r = await sshTo(address, `systemctl ${verb} gateway-etcd.service`);
  expect(r.code, r.err).toBe(0);
  const probe = `(exec 3<>/dev/tcp/${address}/2379) 2>/dev/null`;
  await eventually(
    `the etcd member on ${address} to ${verb === "stop" ? "be gone" : "listen"}`,
    async () => {
      const up = (await sshTo(address, probe)).code === 0;
      return verb === "stop" ? !up : up;
    },
  );
}

/** Registers through `address` until it answers 200 (quorum back), within `timeoutMs`. */
async function registersAgain(address: string, timeoutMs = 60_000): Promise<string> {
  let ip = "";
  await eventually(
    `a registration through ${address} to succeed`,
    async () => {
      const r = await register(address).catch(() => undefined);
      if (r?.status !== 200) return false;
      ip = (JSON.parse(r.body) as { wg: { client_ip: string } }).wg.client_ip;
      return true;
    },
    timeoutMs,
  );
  return ip;
}

/** In the namespace of gateway host `ns`, drops every packet to and from `peers`, or lifts it. */
async function partition(ns: string, peers: readonly string[], on: boolean): Promise<void> {
  const set = `{ ${peers.join(", ")} }`;
  const script = on
    ? [
        "add table inet labpartition",
        "add chain inet labpartition in { type filter hook input priority -10; }",
        "add chain inet labpartition out { type filter hook output priority -10; }",
        `add rule inet labpartition in ip saddr ${set} drop`,
        `add rule inet labpartition out ip daddr ${set} drop`,
      ]
    : ["delete table inet labpartition"];
  const r = await run("ip", ["netns", "exec", ns, "nft", "-f", "-"], { input: script.join("\n") });
  expect(r.code, r.err).toBe(0);
}

export function regionFaultSuite(engine: LabEngine): void {
  describe(`a region of three gateway hosts, the ${engine} engine: faults`, () => {
    it("one etcd member lost: quorum holds, clients see nothing, registrations go on", async () => {
      const [first, , third] = hosts();
      await etcdMember(third ?? "", "stop");
      try {
        await everyHostRoutes();
        const r = await register(first ?? "");
        expect(r.status, r.body).toBe(200);
      } finally {
        await etcdMember(third ?? "", "start");
      }
    }, 90_000);

    it("quorum lost: every host keeps serving, registrations fail with E_CLUSTER_UNAVAILABLE, then resume", async () => {
      const [first, second, third] = hosts();
      await etcdMember(second ?? "", "stop");
      await etcdMember(third ?? "", "stop");
      try {
        await everyHostRoutes();
        const r = await register(first ?? "");
        expect(r.status).toBeGreaterThanOrEqual(500);
        expect(codeOf(r.body)).toBe("E_CLUSTER_UNAVAILABLE");
      } finally {
        await etcdMember(second ?? "", "start");
        await etcdMember(third ?? "", "start");
      }
      await registersAgain(first ?? "");
    }, 120_000);

    it("a host partitioned from the others: no duplicate address, nothing acknowledged lost, views converge", async () => {
      const [first, second, third] = hosts();
      const acknowledged: string[] = [];
      await partition(LAB_NS.third, [first ?? "", second ?? ""], true);
      try {
        for (const address of [first, third, first, third]) {
          const r = await register(address ?? "").catch(() => undefined);
          if (r?.status === 200)
            acknowledged.push((JSON.parse(r.body) as { wg: { client_ip: string } }).wg.client_ip);
          else if (address === first)
            expect.fail(`registration through ${first} failed: ${r?.body}`);
        }
      } finally {
        await partition(LAB_NS.third, [first ?? "", second ?? ""], false);
      }
      expect(new Set(acknowledged).size).toBe(acknowledged.length);
      for (const address of hosts())
        await eventually(
          `${address} to have every acknowledged registration as a peer`,
          async () => {
            const peers = await peerIps(address);
            return (
              acknowledged.every((ip) => peers.includes(`${ip}/32`)) &&
              new Set(peers).size === peers.length
            );
          },
          30_000,
        );
    }, 120_000);

    it("a host restarted catches up from etcd before it takes registrations", async () => {
      const [first, , third] = hosts();
      // Stopped, so a registration through another host is one it has not seen; its old
      // workers and the WireGuard interface it leaves have every peer of before.
      const stopped = await sshTo(third ?? "", "systemctl stop gateway.service");
      expect(stopped.code, stopped.err).toBe(0);
      const meanwhile = await registersAgain(first ?? "");
      const r = await sshTo(
        third ?? "",
        // Start, then the peers the moment the new generation says it serves: its ready file
        // names the unit's new main pid (the RPC port alone proves nothing: the socket unit
        // accepts for it). Bounded: 60 s, else the script fails.
        'systemctl start gateway.service; for i in $(seq 600); do [ "$(cat /run/gateway/ready 2>/dev/null)" = "$(systemctl show -p MainPID --value gateway.service)" ] && break; sleep 0.1; done; [ $i -lt 600 ] && wg show wg-lab allowed-ips',
        90_000,
      );
      expect(r.code, r.err).toBe(0);
      const caughtUp = r.out
        .split("\n")
        .flatMap((line) => line.split(/\s+/).slice(1))
        .filter((ip) => ip.endsWith("/32"))
        .sort();
      expect(caughtUp).toContain(`${meanwhile}/32`);
      expect(caughtUp).toEqual(await peerIps(first ?? ""));
    }, 120_000);

    it("a CVM that registered while a host was draining gets it as a peer once it is back (the agent's refresh)", async () => {
      const [first, , third] = hosts();
      const id = ctx.lab.apps[0]?.instanceIds[0] ?? "";
      const gatewayPeers = async (cvm: LabCvmRecord) => {
        const r = await run("ip", ["netns", "exec", cvm.ns, "wg", "show", cvm.interface, "peers"]);
        expect(r.code, r.err).toBe(0);
        return r.out.split("\n").filter(Boolean).length;
      };
      await adminOn(first ?? "", "SetNodeStatus", { name: "gw3", status: "down" });
      let cvm: LabCvmRecord;
      try {
        // The agent starts again and registers while gw3 takes no registrations.
        cvm = await stopAgent(id);
        const again = await lab$("up");
        expect(again.code, again.err).toBe(0);
        // wireguard-go takes a configuration's peers one by one: wait for the whole of it.
        await eventually(
          "the restarted agent's tunnel to have gw1 and gw2 as peers",
          async () => (await gatewayPeers(cvm)) === 2,
        );
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        expect(await gatewayPeers(cvm), "gw3 is draining: not a peer").toBe(2);
      } finally {
        await adminOn(first ?? "", "SetNodeStatus", { name: "gw3", status: "up" });
      }
      // The lab's agents refresh every 15 s.
      await eventually(
        "the agent to take gw3 as a peer",
        async () => (await gatewayPeers(cvm)) === 3,
        45_000,
      );
      await eventually("gw3 to route to the CVM", async () =>
        (await curlVia(third ?? "", `${id}-8080`, "/back")).out.startsWith(`${id} 8080 GET /back`),
      );
    }, 180_000);

    it("a gateway host killed (SIGKILL) while clients stream through it: the others serve its CVMs, reconnecting clients succeed", async () => {
      const [first, second, third] = hosts();
      const stream = await openTls(`${ctx.app}-8080`, second);
      expect(await request(stream, "/before")).toMatch(/8080 GET \/before/);
      const ended = new Promise<void>((resolve) => {
        stream.once("close", () => resolve());
      });
      // The whole host fails at once: its gateway, its workers, its etcd member, its sshd.
      const pids = (await run("ip", ["netns", "pids", LAB_NS.second])).out
        .split("\n")
        .filter(Boolean);
      expect(pids.length).toBeGreaterThan(0);
      const killedAt = performance.now();
      for (const pid of pids) process.kill(Number(pid), "SIGKILL");
      await ended;
      for (const address of [first, third]) {
        const again = await openTls(`${ctx.app}-8080`, address);
        expect(await request(again, "/after")).toMatch(/8080 GET \/after/);
        again.destroy();
        // Its CVMs need no failover: every host had their peers all along. So the first new
        // connection through another host is served, with no wait for the dead one's lease.
        const servedMs = performance.now() - killedAt;
        expect(
          servedMs,
          `served through ${address} ${Math.round(servedMs)} ms after the kill`,
        ).toBeLessThan(3_000);
        for (const id of ctx.lab.apps[0]?.instanceIds ?? [])
          expect((await curlVia(address ?? "", `${id}-8080`, "/k")).out).toMatch(
            new RegExp(`^${id} 8080 GET /k`),
          );
      }
      // And it comes back: npm run lab rebuilds the host, the program deploys it again.
      await labUp();
    }, 400_000);
  });
}
