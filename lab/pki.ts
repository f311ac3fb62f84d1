import { readFileSync } from "node:fs";
import { createCa, issueLeaf } from "../testkit/certs.js";
import { labDir } from "./state.js";

/**
 * The lab's throwaway CA for things that are not ACME-issued (pebble's own listener). Kept in
 * `.lab/pki` so a re-run reuses it and the leaves it signed.
 */
const labCa = () => createCa({ dir: labDir("pki"), name: "gateway lab CA", days: 30 });

/** A leaf for `name` with the given subjectAltNames (e.g. `IP:10.99.0.1`), signed by the lab CA. */
export async function labLeaf(
  name: string,
  sans: readonly string[],
): Promise<{ certFile: string; keyFile: string }> {
  return issueLeaf(labCa(), { name, sans, days: 30 });
}

export function pem(file: string): string {
  return readFileSync(file, "utf8");
}
