/**
 * Registration end to end, with the bundle a host runs: a gateway namespace runs
 * `node dist/gateway.mjs run` (certbot off, a test CA's certificate, attestation mode "ca" with a
 * test RA-TLS CA), three CVM namespaces run `node dist/gateway.mjs agent` with RA-TLS client
 * certificates (app A: instances a1 and a2; app B: instance b1) and an HTTP server on their
 * WireGuard address answering their own name, and a client namespace runs curl against
 * `https://<id>-8080.<base>`. Clocks are shortened: agents treat a handshake older than 3 s as
 * stale (and force a new one), the gateway counts an instance healthy for 8 s after its latest
 * handshake. Every wait is bounded; namespaces are removed even when a step fails.
 */
import { copyFile, readFile, rm, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { issueLeaf } from "../../testkit/certs.js";
import { ENGINES } from "../integration/proxy/harness.js";
import { type LabCvm, RegistrationLab, HTTP_PORT, GATEWAY_IP } from "../helpers/e2e-lab.js";
import { until } from "../../testkit/poll.js";
import { processesMatching } from "../../testkit/netns.js";

const APP_A = "a0".repeat(20);
const APP_B = "b0".repeat(20);
describe.each(ENGINES)(
  "registration end to end on the %s engine (bundle, agents, curl, in network namespaces)",
  (engine) => {
    const lab = new RegistrationLab(engine);
    let a1: LabCvm;
    let a2: LabCvm;
    let b1: LabCvm;
    /** Every answer app B's URL ever gave. */
    const appBAnswers: string[] = [];

    const url = (id: string) => `${id}-${HTTP_PORT}`;

    /** Why requests answered "ERR", newest last: printed when a test fails. */
    const failures: string[] = [];

    /** One request to `https://<id>-8080.<base>/`: the body, or "ERR". Records app B's answers. */
    async function request(id: string, timeoutS = 8): Promise<string> {
      const started = Date.now();
      const body = await lab.curl(url(id), timeoutS).catch((error: Error) => {
        const first = /curl: \(\d+\).*/.exec(error.message)?.[0] ?? error.message.slice(-200);
        failures.push(
          `${new Date(started).toISOString()} ${id.slice(0, 4)}: ${Date.now() - started} ms, ${first}`,
        );
        return "ERR";
      });
      if (id === APP_B && body !== "ERR") appBAnswers.push(body);
      return body;
    }

    /** `n` concurrent requests to `id`. */
    function spread(id: string, n: number): Promise<string[]> {
      return Promise.all(Array.from({ length: n }, () => request(id)));
    }

    function stateIps(text: string): Record<string, string> {
      const state = JSON.parse(text) as { instances: { instanceId: string; ip: string }[] };
      return Object.fromEntries(state.instances.map((i) => [i.instanceId, i.ip]));
    }

    beforeAll(async () => {
      try {
        await lab.setup([
          { tag: "a1", appId: APP_A, instanceId: "a1".repeat(20) },
          { tag: "a2", appId: APP_A, instanceId: "a2".repeat(20) },
          { tag: "b1", appId: APP_B, instanceId: "b1".repeat(20) },
        ]);
        [a1, a2, b1] = lab.cvms as [LabCvm, LabCvm, LabCvm];
        await lab.startGateway();
        await Promise.all(lab.cvms.map((cvm) => lab.startCvm(cvm)));
      } catch (err) {
        await lab.teardown();
        throw err;
      }
    }, 60_000);

    afterAll(async () => {
      await lab.teardown();
    }, 30_000);

    // On a failure, what the requests saw and what the gateway said (its per-connection lines
    // left out): CI output is all there is to go on.
    afterEach(({ task }) => {
      if (task.result?.state !== "fail") return;
      const gateway = (lab.gateway?.log() ?? "")
        .split("\n")
        .filter((line) => !line.includes('"connection closed"'))
        .slice(-40);
      console.error(
        ["failed requests:", ...failures.slice(-10), "gateway log:", ...gateway].join("\n"),
      );
    });

    it("gives each CVM its own address and a 0600 key, and the gateway knows their keys", async () => {
      const ips = lab.cvms.map((c) => c.ip);
      expect(new Set(ips).size).toBe(3);
      for (const ip of ips) expect(ip).toMatch(/^10\.4\.0\.(3[2-9]|[4-9]\d|1\d\d|2[0-4]\d)$/);
      const peers = (await lab.net.exec(lab.gatewayNs, "wg", ["show", lab.gwIface, "allowed-ips"]))
        .stdout;
      for (const cvm of lab.cvms) {
        expect((await stat(join(cvm.dataDir, "wg.key"))).mode & 0o777).toBe(0o600);
        const key = cvm.agent?.lines("generated a WireGuard key")[0]?.publicKey as string;
        expect(peers).toContain(`${key}\t${cvm.ip}/32`);
        const addr = await lab.net.exec(cvm.ns, "ip", ["-4", "-o", "address", "show", cvm.iface]);
        expect(addr.stdout).toContain(`inet ${cvm.ip}/16`);
      }
    });

    it("routes each app to its own instances only, and each instance id to that instance", async () => {
      const a = await spread(APP_A, 24);
      expect(new Set(a)).toEqual(new Set(["a1", "a2"]));
      expect(await spread(APP_B, 12)).toEqual(Array(12).fill("b1"));
      for (const cvm of lab.cvms) expect(await lab.curl(url(cvm.instanceId))).toBe(cvm.tag);
      expect(await request("c0".repeat(20))).toBe("ERR"); // an unknown app
    });

    it("reloads the certificate on SIGHUP", async () => {
      const gw = lab.gateway;
      if (!gw || !lab.proxyCa || !lab.leaf) throw new Error("lab not started");
      const fresh = issueLeaf(lab.proxyCa);
      await copyFile(fresh.keyFile, lab.leaf.keyFile);
      await copyFile(fresh.certFile, lab.leaf.certFile);
      process.kill(gw.proc.pid, "SIGHUP");
      // The data plane also watches the files (a 2 s poll, then 2 s of quiet); its reloads say
      // trigger "file change". The signal's says "request".
      const loaded = await until(
        "the certificate loaded on the signal",
        () =>
          gw
            .lines("certificate loaded")
            .find((l) => l.serial === fresh.serial && l.trigger === "request"),
        10_000,
        { context: gw.log },
      );
      expect(loaded.certFile).toBe(lab.leaf.certFile);
      const script = `const s = require("node:tls").connect({ host: "${GATEWAY_IP}", port: 443,
        servername: process.argv[1], rejectUnauthorized: false },
        () => { console.log(s.getPeerCertificate().serialNumber); s.destroy(); });`;
      const seen = await lab.net.exec(lab.clientNs, process.execPath, [
        "-e",
        script,
        `${url(APP_B)}.app.test.example`,
      ]);
      expect(seen.stdout.trim()).toBe(fresh.serial);
      expect(await lab.curl(url(APP_B))).toBe("b1");
    });

    it("keeps its state across a restart: same addresses, reachable again without re-registering", async () => {
      const before = stateIps(await readFile(lab.statePath, "utf8"));
      expect(Object.keys(before).sort()).toEqual(lab.cvms.map((c) => c.instanceId).sort());
      const registeringBefore = lab.cvms.map(
        (c) => c.agent?.lines("registering with the gateway").length,
      );
      const old = lab.gateway;
      const wireguardGo = processesMatching(`wireguard-go -f ${lab.gwIface}`);
      expect(wireguardGo).toHaveLength(1);
      expect(await lab.stopGateway()).toBe(0);
      expect(old?.lines("stopped")).toHaveLength(1);
      // The interface outlives the gateway (a restart is a hand-over: the tunnels must not
      // drop), so its wireguard-go runs on, and the next gateway adopts it.
      await lab.net.exec(lab.gatewayNs, "ip", ["link", "show", lab.gwIface]);

      const gw = await lab.startGateway();
      expect(processesMatching(`wireguard-go -f ${lab.gwIface}`)).toEqual(wireguardGo);
      expect(gw.lines("registration listening")[0]?.instances).toBe(3);
      expect(stateIps(await readFile(lab.statePath, "utf8"))).toEqual(before);
      for (const cvm of [a1, a2, b1]) {
        await until(
          `${cvm.tag} through the restarted gateway`,
          async () => (await request(cvm.instanceId, 2)) === cvm.tag,
          20_000,
          { context: gw.log },
        );
      }
      // Apps need a healthy instance: health follows a handshake by up to one poll (250 ms).
      await until(
        "both apps healthy again",
        async () => {
          const [a, b] = await Promise.all([request(APP_A, 2), request(APP_B, 2)]);
          return ["a1", "a2"].includes(a) && b === "b1";
        },
        5_000,
      );
      expect(await spread(APP_B, 4)).toEqual(Array(4).fill("b1"));
      // Nobody registered: the agents' forced handshakes reached the restored peers.
      expect(gw.lines("cvm registered")).toEqual([]);
      expect(lab.cvms.map((c) => c.agent?.lines("registering with the gateway").length)).toEqual(
        registeringBefore,
      );
    }, 40_000);

    it("brings the tunnel back when its wireguard-go dies", async () => {
      const agent = b1.agent;
      if (!agent) throw new Error("b1 has no agent");
      const [pid, ...others] = processesMatching(`wireguard-go -f ${b1.iface}`);
      expect(others).toEqual([]);
      process.kill(pid as number, "SIGKILL");
      await until(
        "b1's agent to rebuild its interface",
        () => agent.lines("tunnel up: handshake with the gateway")[1],
        10_000,
        { context: agent.log },
      );
      expect(agent.lines("rebuilding the WireGuard interface")[0]?.reason).toBe(
        "the WireGuard interface is gone",
      );
      expect(processesMatching(`wireguard-go -f ${b1.iface}`)).toHaveLength(1);
      expect(await request(b1.instanceId)).toBe("b1");
    });

    it("sends all of an app's traffic to the live instance once the other's tunnel is gone", async () => {
      const agent = a1.agent;
      if (!agent) throw new Error("a1 has no agent");
      // SIGTERM: the agent takes its tunnel down and stops its wireguard-go.
      await agent.proc.stop();
      expect(agent.proc.child.exitCode).toBe(0);
      expect(agent.lines("stopped")).toHaveLength(1);
      expect(processesMatching(a1.iface)).toEqual([]);
      await expect(lab.net.exec(a1.ns, "ip", ["link", "show", a1.iface])).rejects.toThrow();
      // The gateway drops a1 from app A once a1's latest handshake (whole seconds, as wg
      // reports it) is 8 s old, seen by the next poll (250 ms) after the cache (200 ms) expired.
      const key = agent.lines("generated a WireGuard key")[0]?.publicKey as string;
      const handshakes = (
        await lab.net.exec(lab.gatewayNs, "wg", ["show", lab.gwIface, "latest-handshakes"])
      ).stdout;
      const seconds = Number(
        handshakes
          .split("\n")
          .map((line) => line.split("\t"))
          .find(([k]) => k === key)?.[1],
      );
      expect(seconds).toBeGreaterThan(0);
      // a1 kept its tunnel fresh until it stopped (a forced handshake every ~3 s)
      expect(Date.now() - seconds * 1000).toBeLessThan(8_000);
      await sleep(Math.max(0, seconds * 1000 + 8_000 + 1_000 - Date.now()));
      // One candidate per connection (connect_top_n = 1): a1 still counted healthy would fail
      // about half of these.
      for (let k = 0; k < 5; k++) expect(await request(APP_A)).toBe("a2");
      expect(await spread(APP_A, 20)).toEqual(Array(20).fill("a2"));
      expect(await spread(APP_B, 6)).toEqual(Array(6).fill("b1"));
    }, 30_000);

    it("registers again with a gateway that lost its state", async () => {
      await lab.stopGateway();
      await rm(lab.statePath);
      const gw = await lab.startGateway();
      expect(gw.lines("registration listening")[0]?.instances).toBe(0);
      // Each agent forces a handshake once its tunnel is 3 s silent; nobody answers (the gateway
      // does not know its key), so 15 s later it registers again.
      await Promise.all(
        [a2, b1].map(async (cvm) => {
          const agent = cvm.agent;
          if (!agent) throw new Error(`${cvm.tag} has no agent`);
          const configured = agent.lines("registered; tunnel configured").length;
          const line = await until(
            `${cvm.tag} registered again`,
            () => agent.lines("registered; tunnel configured")[configured],
            30_000,
            { context: agent.log },
          );
          expect(agent.lines("registering with the gateway").at(-1)?.reason).toMatch(
            /not even a forced one: the gateway may have forgotten this instance$/,
          );
          if (line.clientIp !== cvm.ip) {
            cvm.ip = line.clientIp as string; // the server follows its CVM's new address
            await lab.serve(cvm);
          }
        }),
      );
      expect(gw.lines("cvm registered").map((l) => l.instanceId)).toEqual(
        expect.arrayContaining([a2.instanceId, b1.instanceId]),
      );
      await until(
        "both apps through the gateway again",
        async () => {
          const [a, b] = await Promise.all([request(APP_A, 2), request(APP_B, 2)]);
          return a === "a2" && b === "b1";
        },
        10_000,
        { context: gw.log },
      );
      expect(await request(b1.instanceId)).toBe("b1");
    }, 45_000);

    it("never let app B's URL reach app A's servers", () => {
      expect(appBAnswers.length).toBeGreaterThan(20); // every answer app B's URL got, above
      expect(new Set(appBAnswers)).toEqual(new Set(["b1"]));
    });
  },
);
