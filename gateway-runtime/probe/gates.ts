/**
 * The probe's gates, each one question about a gateway with a yes (a detail line) or a thrown
 * reason: is the new generation ready, does it serve the region's certificate, are its
 * registrations back, does its health name answer, does it route a canary app in each URL form.
 * The same gates serve the rollout on a host (against 127.0.0.1) and the checks from outside
 * after a region's deploy (against each address its names resolve to).
 */
import { readFile } from "node:fs/promises";
import { type Address, formatAddress, http1Get, http2Get, tlsConnect } from "./connect.js";

/** One URL form of an app (README "Request path"): the label under the base domain. */
export type RouteForm =
  | { readonly kind: "terminate" }
  | { readonly kind: "port"; readonly port: number }
  | { readonly kind: "passthrough"; readonly port: number }
  | { readonly kind: "h2"; readonly port: number };

export function routeLabel(app: string, form: RouteForm): string {
  switch (form.kind) {
    case "terminate":
      return app;
    case "port":
      return `${app}-${form.port}`;
    case "passthrough":
      return `${app}-${form.port}s`;
    case "h2":
      return `${app}-${form.port}g`;
  }
}

export interface TlsTarget {
  readonly address: Address;
  /** Extra trusted CAs (PEM). */
  readonly ca: readonly string[];
  readonly timeoutMs: number;
}

/** The ready file names the service's current main pid: the new generation serves (host/restart.ts). */
export async function readyGate(file: string, pid: string): Promise<string> {
  let text: string;
  try {
    text = (await readFile(file, "utf8")).trim();
  } catch (e) {
    throw new Error(`no ready file ${file}: ${(e as Error).message}`);
  }
  if (text !== pid.trim())
    throw new Error(`${file} names pid ${text}, the service's main pid is ${pid}`);
  return `${file} names main pid ${text}`;
}

/**
 * The certificate served for a name under the base domain: a chain trusted by Node's roots or
 * the given CAs, covering the name, not expired, and with the expected serial when one is known
 * (the region's pair in etcd, or what the other addresses served). Resolves to the serial.
 */
export async function certificateGate(
  t: TlsTarget,
  servername: string,
  expectedSerial: string | undefined,
): Promise<{ serial: string; detail: string }> {
  const { socket, cert, untrusted } = await tlsConnect({ ...t, servername });
  socket.destroy();
  if (untrusted !== undefined) throw new Error(`${servername}: ${untrusted}`);
  const notAfter = new Date(cert.valid_to);
  if (!(notAfter.getTime() > Date.now())) throw new Error(`expired on ${notAfter.toISOString()}`);
  const serial = cert.serialNumber.toUpperCase();
  if (expectedSerial !== undefined && serial !== expectedSerial.toUpperCase()) {
    throw new Error(
      `serves serial ${serial}, the region's certificate is ${expectedSerial.toUpperCase()}`,
    );
  }
  return {
    serial,
    detail: `${servername} on ${formatAddress(t.address)}: serial ${serial}, trusted, valid until ${notAfter.toISOString()}`,
  };
}

/** `https://health.<base>/health` answers 200 (503 while the node drains). */
export async function healthGate(t: TlsTarget, baseDomain: string): Promise<string> {
  const name = `health.${baseDomain}`;
  const { socket, untrusted } = await tlsConnect({ ...t, servername: name });
  if (untrusted !== undefined) {
    socket.destroy();
    throw new Error(`${name}: ${untrusted}`);
  }
  const status = await http1Get(socket, name, "/health", t.timeoutMs);
  if (status !== 200) throw new Error(`https://${name}/health answered ${status}, not 200`);
  return `https://${name}/health on ${formatAddress(t.address)} answered 200`;
}

/**
 * A request to the canary app through one URL form answers below 500. Terminating forms are
 * served with the gateway's certificate, checked; passthrough is the app's own TLS, which the
 * probe completes without judging (a CVM's certificate is its own business).
 */
export async function routeGate(
  t: TlsTarget,
  baseDomain: string,
  app: string,
  form: RouteForm,
): Promise<string> {
  const name = `${routeLabel(app, form)}.${baseDomain}`;
  const h2 = form.kind === "h2";
  const { socket, untrusted, alpn } = await tlsConnect({
    ...t,
    servername: name,
    alpn: h2 ? ["h2"] : ["http/1.1"],
  });
  if (form.kind !== "passthrough" && untrusted !== undefined) {
    socket.destroy();
    throw new Error(`${name}: ${untrusted}`);
  }
  if (h2 && alpn !== "h2") {
    socket.destroy();
    throw new Error(`${name}: ALPN is ${alpn || "none"}, not h2`);
  }
  const status = h2
    ? await http2Get(socket, name, "/", t.timeoutMs)
    : await http1Get(socket, name, "/", t.timeoutMs);
  if (status >= 500 || status === 0) throw new Error(`https://${name}/ answered ${status}`);
  return `https://${name}/ on ${formatAddress(t.address)} answered ${status}${h2 ? " over h2" : ""}`;
}

/** As many registrations as before the update (or as the caller expects). */
export async function registrationsGate(
  count: () => Promise<number>,
  atLeast: number,
): Promise<string> {
  const n = await count();
  if (n < atLeast)
    throw new Error(`Admin.Status lists ${n} instances, expected at least ${atLeast}`);
  return `Admin.Status lists ${n} instances (at least ${atLeast})`;
}
