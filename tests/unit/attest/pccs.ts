/**
 * A local PCCS serving one stored collateral over Intel's PCCS API v4 (the endpoints and headers
 * @phala/dcap-qvl's `getCollateral` reads), on 127.0.0.1. The only fake in the TDX tests: no
 * PCCS can run here, and the collateral it serves is Intel's, unchanged.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import type { Collateral } from "@phala/dcap-qvl";

export const FIXTURES = new URL("./fixtures/", import.meta.url);

export function fixtureCollateral(): Collateral {
  return JSON.parse(
    readFileSync(new URL("tdx-collateral-fmspc-90c06f000000.json", FIXTURES), "utf8"),
  ) as Collateral;
}

export interface QuoteReport {
  quote: string;
  event_log: string;
  report_data: string;
  vm_config: string;
}

export function fixtureQuoteReport(): QuoteReport {
  return JSON.parse(
    readFileSync(new URL("dstack-quote-report.json", FIXTURES), "utf8"),
  ) as QuoteReport;
}

/** Inside the collateral's validity window (TCB info 2026-02-18 → 2026-03-20). */
export const COLLATERAL_TIME = Date.parse("2026-02-19T00:00:00Z");

export interface FakePccs {
  readonly url: string;
  /** Paths requested, in order. */
  readonly requests: string[];
  /** Changes how the next requests are answered. */
  behave(b: { status?: number; delayMs?: number }): void;
  close(): Promise<void>;
}

const hex = (v: number[] | string) => (typeof v === "string" ? v : Buffer.from(v).toString("hex"));

export async function startPccs(c: Collateral = fixtureCollateral()): Promise<FakePccs> {
  const requests: string[] = [];
  let status = 200;
  let delayMs = 0;
  const routes: Record<string, () => { body: Buffer | string; headers: Record<string, string> }> = {
    "/sgx/certification/v4/pckcrl": () => ({
      body: Buffer.from(hex(c.pck_crl), "hex"),
      headers: { "SGX-PCK-CRL-Issuer-Chain": encodeURIComponent(c.pck_crl_issuer_chain) },
    }),
    "/tdx/certification/v4/tcb": () => ({
      body: `{"tcbInfo":${c.tcb_info},"signature":"${hex(c.tcb_info_signature)}"}`,
      headers: { "TCB-Info-Issuer-Chain": encodeURIComponent(c.tcb_info_issuer_chain) },
    }),
    "/tdx/certification/v4/qe/identity": () => ({
      body: `{"enclaveIdentity":${c.qe_identity},"signature":"${hex(c.qe_identity_signature)}"}`,
      headers: {
        "SGX-Enclave-Identity-Issuer-Chain": encodeURIComponent(c.qe_identity_issuer_chain),
      },
    }),
    "/sgx/certification/v4/rootcacrl": () => ({ body: hex(c.root_ca_crl), headers: {} }),
  };
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const route = routes[new URL(req.url ?? "/", "http://pccs").pathname];
    setTimeout(() => {
      if (!route || status !== 200) {
        res.writeHead(route ? status : 404).end();
        return;
      }
      const { body, headers } = route();
      res.writeHead(200, headers).end(body);
    }, delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    behave(b) {
      status = b.status ?? status;
      delayMs = b.delayMs ?? delayMs;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
