/**
 * The socket units of the gateway (ARCHITECTURE.md "Hand-over"): systemd binds the TLS, redirect
 * and RPC ports and hands them to every start of `gateway.service` (LISTEN_FDS, one name per
 * unit: `FileDescriptorName=` names every socket of its unit, so one unit per port). The sockets
 * and their accept queues belong to systemd, so a restart refuses no connection: what arrives
 * while one generation stops and the next starts waits in the queue. No `PartOf=`: a restart of
 * the service would restart the sockets too, and drop those queues.
 */
import { HEADER, type HostLayout, SERVICE_NAME } from "./layout.js";

export interface SocketUnit {
  /** `gateway-tls.socket`; the runtime reads the descriptor by its name (`tls`). */
  readonly name: string;
  readonly path: string;
  readonly text: string;
}

function listenAddress(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

function socketUnit(
  fdName: "tls" | "http" | "rpc",
  what: string,
  address: string,
  port: number,
): SocketUnit {
  const name = `gateway-${fdName}.socket`;
  return {
    name,
    path: `/etc/systemd/system/${name}`,
    text: `${HEADER}
[Unit]
Description=TLS gateway: ${what} port, held across restarts of the gateway

[Socket]
ListenStream=${listenAddress(address, port)}
FileDescriptorName=${fdName}
Service=${SERVICE_NAME}
Backlog=4096

[Install]
WantedBy=sockets.target
`,
  };
}

/** The host's socket units, in the order the service lists them. */
export function socketUnits(layout: HostLayout): SocketUnit[] {
  return [
    socketUnit("tls", "TLS proxy", layout.tlsAddress, layout.tlsPort),
    ...(layout.httpPort === undefined
      ? []
      : [socketUnit("http", "http redirect", layout.tlsAddress, layout.httpPort)]),
    socketUnit("rpc", "registration RPC", layout.rpcAddress ?? "0.0.0.0", layout.rpcPort),
  ];
}
