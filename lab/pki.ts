import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { sh } from "./exec.js";
import { labDir } from "./state.js";

/** openssl req arguments for a new unencrypted ECDSA P-256 key. */
const NEW_P256_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/**
 * The lab's throwaway CA for things that are not ACME-issued: pebble's own listener. Kept in
 * `.lab/pki` so a re-run reuses it.
 */
export async function labCa(): Promise<{ certFile: string; keyFile: string }> {
  const dir = labDir("pki");
  const certFile = join(dir, "ca.pem");
  const keyFile = join(dir, "ca.key");
  if (!existsSync(certFile)) {
    await sh("openssl", [
      "req",
      "-x509",
      ...NEW_P256_KEY,
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-subj",
      "/CN=gateway lab CA",
      "-days",
      "30",
    ]);
  }
  return { certFile, keyFile };
}

/** A leaf for `name` with the given subjectAltNames (e.g. `IP:10.99.0.1`), signed by the lab CA. */
export async function labLeaf(
  name: string,
  sans: readonly string[],
): Promise<{ certFile: string; keyFile: string }> {
  const ca = await labCa();
  const dir = labDir("pki");
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  if (existsSync(certFile)) return { certFile, keyFile };
  const csr = join(dir, `${name}.csr`);
  await sh("openssl", [
    "req",
    "-new",
    ...NEW_P256_KEY,
    "-keyout",
    keyFile,
    "-out",
    csr,
    "-subj",
    `/CN=${name}`,
  ]);
  await sh("sh", [
    "-c",
    `printf 'subjectAltName=%s\\nextendedKeyUsage=serverAuth\\n' "$1" > "$2"`,
    "sh",
    sans.join(","),
    `${csr}.ext`,
  ]);
  await sh("openssl", [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca.certFile,
    "-CAkey",
    ca.keyFile,
    "-CAcreateserial",
    "-days",
    "30",
    "-extfile",
    `${csr}.ext`,
    "-out",
    certFile,
  ]);
  return { certFile, keyFile };
}

export function pem(file: string): string {
  return readFileSync(file, "utf8");
}
