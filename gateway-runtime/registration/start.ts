import { readFile } from "node:fs/promises";
import { createAttestation } from "../attest/index.js";
import { authorizerFromConfig } from "../auth/index.js";
import { type GatewayConfig, parseCidr } from "../config/index.js";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log/index.js";
import type { MemoryDirectory } from "../registry/index.js";
import type { NodeMembership } from "../cluster/index.js";
import type { DrainingFlag } from "../proxy/index.js";
import { RpcServer } from "../rpc/index.js";
import { WireGuardManager } from "../wg/index.js";
import { joinRegion, regionPeers, startRegionLoops } from "./region.js";
import { RegistrationService, registrationSettings } from "./service.js";
import { openStore } from "./store.js";

export interface Registration {
  readonly service: RegistrationService;
  readonly rpc: RpcServer;
  readonly wg: WireGuardManager;
  /** This host among the region's nodes; absent without `core.cluster.enabled`. */
  readonly region?: NodeMembership;
  stop(): Promise<void>;
}

async function readCa(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new GatewayError(
      "E_ATTEST_CONFIG",
      `cannot read core.attestation.ca_file ${file}: ${(error as Error).message}`,
    );
  }
}

/**
 * The control plane: registration state, WireGuard, the RPC server CVMs register with, health
 * polling and recycling. Started after the data plane, which reads the same directory.
 */
export async function startRegistration(
  config: GatewayConfig,
  deps: { directory: MemoryDirectory; log: Logger; draining?: DrainingFlag },
  ports: { rpc?: number; rpcFd?: number | undefined } = {},
): Promise<Registration> {
  const { wg: wgConfig, attestation: att, recycle } = config.core;
  const log = deps.log.child({ part: "registration" });
  // Mode "ca" also has the RPC server ask for client certificates chaining to that CA.
  let caPem: string | undefined;
  let attestation: ReturnType<typeof createAttestation>;
  if (att.mode === "ca") {
    caPem = await readCa(att.ca_file);
    attestation = createAttestation({ mode: "ca", caPem });
  } else {
    const { pccs_url: pccsUrl, pccs_timeout: pccsTimeoutMs } = att;
    attestation = createAttestation({ mode: "tdx", pccsUrl, pccsTimeoutMs });
  }
  const gateway = parseCidr(wgConfig.ip);
  const range = parseCidr(wgConfig.client_ip_range);
  if (!gateway || !range)
    throw new GatewayError("E_WG_CONFIG_INVALID", "core.wg.ip or client_ip_range is not a CIDR");
  const reserved = wgConfig.reserved_net.flatMap((r) => parseCidr(r) ?? []);
  const store = await openStore(config, { range, gatewayIp: gateway.address, reserved }, log);
  const cleanup: (() => Promise<void>)[] = [() => store.close()];
  const stopAll = async () => {
    for (const step of cleanup)
      await step().catch((error: unknown) => log.error({ err: error }, "stop step failed"));
  };
  try {
    const wg = await WireGuardManager.create({
      interface: wgConfig.interface,
      configPath: wgConfig.config_path,
      privateKey: wgConfig.private_key,
      listenPort: wgConfig.listen_port,
      address: wgConfig.ip,
      peers: store.list().map((r) => ({ publicKey: r.publicKey, ip: r.ip })),
      log,
    });
    cleanup.unshift(() => wg.close());
    await wg.ensureInterface();
    const version = "unknown";
    const region = config.core.cluster.enabled ? await joinRegion(config, log, version) : undefined;
    if (region) {
      cleanup.unshift(() => region.close());
      // The health name follows this node's status, set from any host's admin API.
      const follow = () => deps.draining?.set(region.draining);
      follow();
      const off = region.onChange(follow);
      cleanup.unshift(async () => off());
    }
    const service = new RegistrationService({
      ...registrationSettings(config),
      attestation,
      authorizer: authorizerFromConfig(config.core.auth),
      store,
      directory: deps.directory,
      peers: wg,
      version,
      ...(region ? { cluster: regionPeers(region), draining: () => region.draining } : {}),
      log,
    });
    await service.start();
    const woken = await wg.wakePeers();
    if (woken > 0) log.info({ peers: woken }, "asked known peers for fresh WireGuard handshakes");
    const rpc = await RpcServer.start({
      handler: service,
      certFile: config.core.proxy.cert_chain,
      keyFile: config.core.proxy.cert_key,
      ...(caPem ? { clientCaPem: caPem } : {}),
      address: config.address,
      port: ports.rpc ?? config.port,
      fd: ports.rpcFd,
      keepAliveMs: config.keep_alive,
      handshakeTimeoutMs: config.core.proxy.timeouts.handshake,
      log,
    });
    cleanup.unshift(() => rpc.close());
    // Health known before the data plane starts (run.ts starts this part first): a new
    // generation's first connections are routed by the handshakes the interface already has.
    await wg.handshakes().then(
      (handshakes) => service.applyHandshakes(handshakes),
      (err: unknown) => log.warn({ err }, "WireGuard health poll failed"),
    );
    const health = wg.startHealthPolling(wgConfig.handshake_poll_interval, (handshakes) =>
      service.applyHandshakes(handshakes),
    );
    cleanup.unshift(async () => health.stop());
    if (region) {
      const stopLoops = startRegionLoops(region, service, {
        pollMs: wgConfig.handshake_poll_interval,
        recycle: {
          enabled: recycle.enabled,
          intervalMs: recycle.interval,
          timeoutMs: recycle.timeout,
        },
        log,
      });
      cleanup.unshift(async () => stopLoops());
    } else if (recycle.enabled) {
      const timer = setInterval(() => {
        service.recycle().then(
          (removed) =>
            removed.length > 0 &&
            log.info({ removed }, "recycled instances without a recent handshake"),
          (error: unknown) => log.error({ err: error }, "recycle failed"),
        );
      }, recycle.interval);
      cleanup.unshift(async () => clearInterval(timer));
    }
    log.info(
      { rpc: rpc.port, interface: wgConfig.interface, instances: store.list().length },
      "registration listening",
    );
    return { service, rpc, wg, ...(region ? { region } : {}), stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
