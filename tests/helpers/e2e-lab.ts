/**
 * A small lab in network namespaces for end-to-end tests of the bundle: a gateway namespace
 * running `node dist/gateway.mjs run`, a client namespace, and CVM namespaces each running
 * `node dist/gateway.mjs agent` plus an HTTP server on its WireGuard address that answers its
 * own name. Every namespace hangs off the gateway namespace by its own veth /30; CVMs route
 * everything through it, the client only ever talks to the gateway's address.
 *
 *   client 192.0.2.2 ── 192.0.2.1 gateway ── 192.0.2.5/.9/... ── CVM 192.0.2.6/.10/...
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateWgKeyPair } from "../../gateway-runtime/keys/wireguard.js";
import {
  createCa,
  issueLeaf,
  type LeafCert,
  TEST_DOMAIN,
  type TestCa,
} from "../../testkit/certs.js";
import { cleanupStale, NetnsHarness, type NsProcess } from "../../testkit/netns.js";
import { until } from "../../testkit/poll.js";
import { appInfoSpec, createTestCa, issueRaTlsCert, type TestCert } from "../../testkit/ra-tls.js";

export const BUNDLE = new URL("../../dist/gateway.mjs", import.meta.url).pathname;
export const GATEWAY_IP = "192.0.2.1";
export const RPC_PORT = 8000;
export const HTTP_PORT = 8080;
const RPC_NAME = `rpc.${TEST_DOMAIN}`;

export interface CvmSpec {
  /** Namespace and link tag: lowercase letters and digits, at most 5. */
  readonly tag: string;
  /** Hex app and instance ids (20 bytes each, as dstack's). */
  readonly appId: string;
  readonly instanceId: string;
}

export interface LabCvm extends CvmSpec {
  readonly ns: string;
  readonly iface: string;
  readonly dataDir: string;
  readonly cert: TestCert;
  agent?: Logged;
  server?: NsProcess;
  /** The WireGuard address the gateway gave it. */
  ip?: string;
}

/** A process with its whole output kept (NsProcess keeps the last 16 KiB only). */
export interface Logged {
  readonly proc: NsProcess;
  log(): string;
  /** The JSON log lines whose `msg` is `msg`. */
  lines(msg: string): Record<string, unknown>[];
}

function logged(proc: NsProcess): Logged {
  let text = "";
  const keep = (chunk: Buffer) => {
    text += chunk.toString("utf8");
  };
  proc.child.stdout?.on("data", keep);
  proc.child.stderr?.on("data", keep);
  const lines = (msg: string) =>
    text
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === msg);
  return { proc, log: () => text, lines };
}

export class RegistrationLab {
  readonly net = new NetnsHarness();
  readonly cvms: LabCvm[] = [];
  dir = "";
  gatewayNs = "";
  clientNs = "";
  proxyCa: TestCa | undefined;
  leaf: LeafCert | undefined;
  configFile = "";
  statePath = "";
  gateway: Logged | undefined;
  readonly gwIface = this.net.linkName("g");

  /** `engine`: the gateway's `core.proxy.engine`. */
  constructor(readonly engine: "node" | "haproxy" = "node") {}

  /** Builds namespaces, links, certificates and the gateway config; starts nothing. */
  async setup(specs: readonly CvmSpec[]): Promise<void> {
    await cleanupStale();
    this.dir = await mkdtemp(join(tmpdir(), "gwt-e2e-"));
    this.proxyCa = createCa();
    this.leaf = issueLeaf(this.proxyCa, { sans: [`*.${TEST_DOMAIN}`, TEST_DOMAIN] });
    const raCa = createTestCa("e2e RA-TLS CA");
    await writeFile(join(this.dir, "ra-ca.pem"), raCa.pem);
    this.gatewayNs = await this.net.add("gw");
    this.clientNs = await this.net.add("client");
    await this.net.veth(
      { ns: this.gatewayNs, dev: "to-client", address: `${GATEWAY_IP}/30` },
      { ns: this.clientNs, dev: "to-gw", address: "192.0.2.2/30" },
    );
    for (const [k, spec] of specs.entries()) {
      const ns = await this.net.add(`cvm-${spec.tag}`);
      const base = 4 * (k + 1);
      await this.net.veth(
        { ns: this.gatewayNs, dev: `to-${spec.tag}`, address: `192.0.2.${base + 1}/30` },
        { ns, dev: "to-gw", address: `192.0.2.${base + 2}/30` },
      );
      await this.net.exec(ns, "ip", ["route", "add", "default", "via", `192.0.2.${base + 1}`]);
      const cert = issueRaTlsCert(raCa, { appInfo: appInfoSpec(spec.appId, spec.instanceId) });
      const dataDir = join(this.dir, `cvm-${spec.tag}`);
      this.cvms.push({ ...spec, ns, iface: this.net.linkName(spec.tag), dataDir, cert });
      await writeFile(join(this.dir, `${spec.tag}.pem`), cert.pem);
      await writeFile(join(this.dir, `${spec.tag}.key`), cert.keyPem, { mode: 0o600 });
    }
    this.statePath = join(this.dir, "state", "gateway-state.json");
    this.configFile = join(this.dir, "gateway.json");
    const wg = generateWgKeyPair();
    const config = {
      log_level: "debug",
      address: GATEWAY_IP,
      port: RPC_PORT,
      core: {
        rpc_domain: RPC_NAME,
        state_path: this.statePath,
        auth: { enabled: false },
        admin: { enabled: false },
        certbot: { enabled: false },
        sync: { enabled: false },
        attestation: { mode: "ca", ca_file: join(this.dir, "ra-ca.pem") },
        wg: {
          public_key: wg.publicKey,
          private_key: wg.privateKey,
          ip: "10.4.0.1/16",
          client_ip_range: "10.4.0.0/20",
          reserved_net: ["10.4.0.0/27"],
          config_path: join(this.dir, "wireguard", "gw.conf"),
          interface: this.gwIface,
          endpoint: `${GATEWAY_IP}:51820`,
          handshake_poll_interval: "250ms",
        },
        proxy: {
          engine: this.engine,
          cert_chain: this.leaf.certFile,
          cert_key: this.leaf.keyFile,
          base_domain: TEST_DOMAIN,
          listen_addr: GATEWAY_IP,
          listen_port: 443,
          http_redirect: false,
          healthy_handshake_age: "8s",
          // One candidate per connection: only health (not a lost connect race) takes an
          // instance out, so tests see the health window.
          connect_top_n: 1,
          // Each forced handshake (every ~3 s here) drops the tunnel's session for a moment;
          // a SYN lost then is sent again after 1 s and 3 s. 5 s lets both count.
          timeouts: { connect: "5s", cache_top_n: "200ms" },
        },
      },
    };
    await writeFile(this.configFile, JSON.stringify(config, null, 2), { mode: 0o600 });
  }

  /** Starts the gateway bundle and waits until its RPC listens. */
  async startGateway(): Promise<Logged> {
    const gw = logged(
      this.net.spawn(this.gatewayNs, process.execPath, [
        BUNDLE,
        "run",
        "--config",
        this.configFile,
      ]),
    );
    this.gateway = gw;
    await until(
      "the gateway's registration RPC",
      () => gw.lines("registration listening")[0],
      15_000,
      { context: gw.log },
    );
    return gw;
  }

  /** SIGTERM to the gateway; resolves with its exit code once it is gone. */
  async stopGateway(): Promise<number | null> {
    const gw = this.gateway;
    if (!gw) return null;
    await gw.proc.stop();
    this.gateway = undefined;
    return gw.proc.child.exitCode;
  }

  /** Starts a CVM's agent, waits for its tunnel address, then starts its HTTP server there. */
  async startCvm(cvm: LabCvm): Promise<void> {
    const agent = logged(
      this.net.spawn(cvm.ns, process.execPath, [
        BUNDLE,
        "agent",
        ...["--gateway", `https://${GATEWAY_IP}:${RPC_PORT}`, "--servername", RPC_NAME],
        ...["--cert", join(this.dir, `${cvm.tag}.pem`), "--key", join(this.dir, `${cvm.tag}.key`)],
        ...[
          "--ca",
          this.proxyCa?.certFile ?? "",
          "--interface",
          cvm.iface,
          "--data-dir",
          cvm.dataDir,
        ],
        // Shortened clocks: a live tunnel re-handshakes every ~3 s instead of every 2 minutes.
        ...["--handshake-timeout", "3s", "--check-interval", "250ms", "--handshake-wait", "15s"],
      ]),
    );
    cvm.agent = agent;
    const configured = await until(
      `the tunnel of ${cvm.tag}`,
      () => agent.lines("registered; tunnel configured")[0],
      15_000,
      { context: agent.log },
    );
    cvm.ip = configured.clientIp as string;
    await until(
      `the first handshake of ${cvm.tag}`,
      () => agent.lines("tunnel up: handshake with the gateway")[0],
      10_000,
      { context: agent.log },
    );
    await this.serve(cvm);
  }

  /** (Re)starts the CVM's HTTP server on its current WireGuard address. */
  async serve(cvm: LabCvm): Promise<void> {
    await cvm.server?.stop();
    const script = `const [name, ip, port] = process.argv.slice(1);
      require("node:http").createServer((q, s) => s.end(name))
        .listen(Number(port), ip, () => console.log("listening"));`;
    const server = this.net.spawn(cvm.ns, process.execPath, [
      "-e",
      script,
      cvm.tag,
      cvm.ip ?? "",
      String(HTTP_PORT),
    ]);
    cvm.server = server;
    await until(
      `the HTTP server of ${cvm.tag}`,
      () => server.output().includes("listening"),
      5_000,
      { context: server.output },
    );
  }

  /** `curl https://<label>.<base>/` from the client namespace; resolves with the body. */
  async curl(label: string, timeoutS = 4): Promise<string> {
    const host = `${label}.${TEST_DOMAIN}`;
    const { stdout } = await this.net.exec(
      this.clientNs,
      "curl",
      [
        ...[
          "-sS",
          "--fail",
          "--max-time",
          String(timeoutS),
          "--cacert",
          this.proxyCa?.certFile ?? "",
        ],
        ...["--resolve", `${host}:443:${GATEWAY_IP}`, `https://${host}/`],
      ],
      (timeoutS + 2) * 1000,
    );
    return stdout;
  }

  /** Stops every process and namespace and removes the temp dir; safe to call twice. */
  async teardown(): Promise<void> {
    try {
      await this.net.teardown();
    } finally {
      this.proxyCa?.cleanup();
      if (this.dir) await rm(this.dir, { recursive: true, force: true });
    }
  }
}
