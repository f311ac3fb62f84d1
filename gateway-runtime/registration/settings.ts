/**
 * What the registration service is given: its settings from the config, and the two parts it
 * writes to besides the store (WireGuard's peer list, the directory the data plane reads).
 */
import type { GatewayConfig } from "../config/index.js";
import type { Instance } from "../registry/index.js";
import type { GuestAgentConfig, WireGuardPeer } from "../rpc/wire.js";

/** One CVM as a WireGuard peer of this gateway (`AllowedIPs = <ip>/32`). */
export interface WgPeer {
  readonly publicKey: string;
  readonly ip: string;
}

/** Applies the complete peer list to WireGuard (the wg manager implements it). */
export interface PeerApplier {
  setPeers(peers: readonly WgPeer[]): Promise<void>;
}

/** The part of `MemoryDirectory` registration writes. */
export interface DirectoryWriter {
  instance(id: string): Instance | undefined;
  upsert(instance: Instance): void;
  remove(id: string): void;
  setHandshake(id: string, lastHandshakeMs: number): void;
}

/** What a CVM is told besides its address, and when a quiet instance is recycled. */
export interface RegistrationSettings {
  readonly agent: GuestAgentConfig;
  /** This gateway as a WireGuard peer of CVMs. */
  readonly server: WireGuardPeer;
  /** `core.recycle.timeout`, ms. */
  readonly recycleTimeoutMs: number;
}

/** The response settings and recycle timeout a config implies. */
export function registrationSettings(config: GatewayConfig): RegistrationSettings {
  const { proxy, wg, recycle } = config.core;
  return {
    agent: {
      external_port: proxy.listen_port,
      internal_port: proxy.agent_port,
      domain: proxy.base_domain,
      app_address_ns_prefix: proxy.app_address_ns_prefix,
    },
    server: { pk: wg.public_key, ip: wg.ip, endpoint: wg.endpoint },
    recycleTimeoutMs: recycle.timeout,
  };
}
