/**
 * Registration in a region of several hosts (`core.cluster.enabled`): this host joins the
 * region's nodes in etcd (cluster/membership.ts), RegisterCvm lists every live node that is not
 * draining, each host reports the handshakes it sees, and one elected host recycles, deciding
 * on the freshest handshake any host reported (a CVM talks to every host, but each host sees
 * only its own tunnel to it).
 */
import {
  activeNodes,
  freshest,
  gatewayNodeInfo,
  NodeMembership,
  reportPeriodMs,
  wireGuardPeer,
} from "../cluster/index.js";
import type { GatewayConfig } from "../config/index.js";
import type { Logger } from "../log/index.js";
import type { GatewayNodeInfo, WireGuardPeer } from "../rpc/wire.js";
import type { RegistrationService } from "./service.js";
import { etcdConnector, nodeName } from "./store.js";

/** Joins the region as this host; `version` is what Info reports. */
export async function joinRegion(
  config: GatewayConfig,
  log: Logger,
  version: string,
): Promise<NodeMembership> {
  const { wg, cluster, sync } = config.core;
  const connect = await etcdConnector(config);
  const name = nodeName(config);
  const membership = await NodeMembership.open({
    client: await connect(),
    ownsClient: true,
    prefix: cluster.prefix,
    timeoutMs: cluster.etcd.timeout,
    self: {
      name,
      wg_public_key: wg.public_key,
      wg_ip: wg.ip,
      wg_endpoint: wg.endpoint,
      url: sync.my_url ?? "",
      version,
      started_at: Date.now(),
    },
    log: log.child({ node: name }),
  });
  log.info(
    { node: name, nodes: membership.nodes().map((n) => n.name) },
    "joined the region's gateway nodes in etcd",
  );
  return membership;
}

/** RegisterCvm's `servers` and `gateways` for the region as `membership` sees it now. */
export function regionPeers(
  membership: NodeMembership,
): () => { servers: WireGuardPeer[]; gateways: GatewayNodeInfo[] } {
  return () => {
    const nodes = activeNodes(membership.self, membership.nodes());
    return { servers: nodes.map(wireGuardPeer), gateways: nodes.map(gatewayNodeInfo) };
  };
}

export interface RegionLoopOptions {
  readonly pollMs: number;
  readonly recycle: {
    readonly enabled: boolean;
    readonly intervalMs: number;
    readonly timeoutMs: number;
  };
  /** @default Date.now */
  readonly now?: () => number;
  readonly log: Logger;
}

/**
 * Reports this host's handshakes every report period (the first once the first poll is in), and
 * recycles every `recycle.intervalMs` when this host holds the recycler key. Returns the stop.
 */
export function startRegionLoops(
  membership: NodeMembership,
  service: RegistrationService,
  o: RegionLoopOptions,
): () => void {
  const now = o.now ?? Date.now;
  const started = now();
  const periodMs = reportPeriodMs(o.recycle.timeoutMs, o.pollMs);
  const report = () => void membership.report(service.seenHandshakes());
  const first = setTimeout(report, o.pollMs + 500);
  const reporting = setInterval(report, periodMs);
  let recycling: NodeJS.Timeout | undefined;
  if (o.recycle.enabled) {
    recycling = setInterval(() => {
      // Until every host had the time to report once, an instance's freshest handshake may
      // not be known yet.
      if (now() - started < periodMs + 2 * o.pollMs) return;
      recycleOnce(membership, service, now()).then(
        (removed) =>
          removed.length > 0 &&
          o.log.info({ removed }, "recycled instances no gateway node saw recently"),
        (err: unknown) => o.log.error({ err }, "recycle failed"),
      );
    }, o.recycle.intervalMs);
  }
  return () => {
    clearTimeout(first);
    clearInterval(reporting);
    clearInterval(recycling);
  };
}

/** One recycling round: nothing unless this host is the recycler. */
export async function recycleOnce(
  membership: NodeMembership,
  service: RegistrationService,
  at: number,
): Promise<string[]> {
  if (!(await membership.lead())) return [];
  const reports = await membership.reports();
  return service.recycle(at, freshest(reports.values()));
}
