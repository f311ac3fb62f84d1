import { readFile } from "node:fs/promises";
import { createAttestation } from "../attest/index.js";
import { authorizerFromConfig } from "../auth/index.js";
import { type GatewayConfig, parseCidr } from "../config/index.js";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log/index.js";
import type { MemoryDirectory } from "../registry/index.js";
import { RpcServer } from "../rpc/index.js";
import { WireGuardManager } from "../wg/index.js";
import { RegistrationService, registrationSettings } from "./service.js";
import { openStore } from "./store.js";

export interface Registration {
  readonly service: RegistrationService;
  readonly rpc: RpcServer;
  readonly wg: WireGuardManager;
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
  deps: { directory: MemoryDirectory; log: Logger },
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
    const service = new RegistrationService({
      ...registrationSettings(config),
      attestation,
      authorizer: authorizerFromConfig(config.core.auth),
      store,
      directory: deps.directory,
      peers: wg,
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
    const health = wg.startHealthPolling(wgConfig.handshake_poll_interval, (handshakes) =>
      service.applyHandshakes(handshakes),
    );
    cleanup.unshift(async () => health.stop());
    if (recycle.enabled && config.core.cluster.enabled) {
      // Each host sees handshakes only of the CVMs that talk to it; recycling on one host's
      // view would remove instances alive on another. Off until hosts share what they see.
      log.warn("core.recycle is not run while core.cluster is enabled");
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
    return { service, rpc, wg, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
