import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** Everything the lab makes on disk lives under `.lab/` of the checkout; `lab down` removes it. */
export const LAB_DIR = resolve(import.meta.dirname, "..", ".lab");

/** Fixed names and addresses: the lab stack (stacks/Pulumi.lab.yaml) refers to them. */
export const LAB = {
  bridge: "gwlab0",
  hostAddress: "10.99.0.1",
  prefix: 24,
  gateway: { ns: "gwlab-gw", address: "10.99.0.2", veth: "gwlab-gw0" },
  cvms: [
    { ns: "gwlab-cvm1", address: "10.99.0.11", veth: "gwlab-cvm10" },
    { ns: "gwlab-cvm2", address: "10.99.0.12", veth: "gwlab-cvm20" },
  ],
  baseDomain: "gw.lab.test",
  customDomain: "shop.customer.lab.test",
  dnsPort: 53,
  acmePort: 14000,
  acmeManagementPort: 15000,
} as const;

export function labPath(...parts: string[]): string {
  mkdirSync(LAB_DIR, { recursive: true, mode: 0o700 });
  return join(LAB_DIR, ...parts);
}

export function labDir(...parts: string[]): string {
  const dir = labPath(...parts);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export function readJson<T>(file: string): T | undefined {
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as T) : undefined;
}

export function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
}
