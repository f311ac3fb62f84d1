/**
 * Throwaway certificates for TLS tests, made with the `openssl` CLI in a temp dir: a CA and
 * leaf certificates (ECDSA P-256 by default, or RSA 2048) for `*.app.test.example` and
 * `app.test.example`. Every function is synchronous; `cleanup()` removes the dir.
 */
import { spawnSync } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const TEST_DOMAIN = "app.test.example";
export const TEST_SANS = [`*.${TEST_DOMAIN}`, TEST_DOMAIN] as const;

export type KeyType = "ec" | "rsa";

export interface TestCa {
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly certPem: string;
  cleanup(): void;
}

export interface LeafCert {
  readonly certFile: string;
  readonly keyFile: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** As `X509Certificate.serialNumber` and `getPeerCertificate().serialNumber` spell it. */
  readonly serial: string;
}

export interface LeafOptions {
  /** @default "ec" */
  readonly key?: KeyType;
  /** subjectAltName entries: DNS names, or `DNS:`/`IP:` entries as given. @default TEST_SANS */
  readonly sans?: readonly string[];
  /**
   * A stable name: the subject's CN and the files' base name, and an existing pair of that name
   * is reused (the lab keeps its PKI between runs). @default a random name, CN `app.test.example`
   */
  readonly name?: string;
  /** Days of validity; a negative number gives a certificate that has already expired. @default 2 */
  readonly days?: number;
}

function openssl(args: readonly string[], cwd: string): void {
  const r = spawnSync("openssl", args, { cwd, encoding: "utf8", timeout: 15_000 });
  if (r.status !== 0) {
    throw new Error(`openssl ${args.join(" ")} failed (${r.status}): ${r.stderr}${r.error ?? ""}`);
  }
}

function newKeyArgs(key: KeyType): string[] {
  return key === "ec"
    ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    : ["-newkey", "rsa:2048"];
}

export interface CaOptions {
  /** Keep the CA in this directory, reusing one already there. @default a fresh temp dir */
  readonly dir?: string;
  /** @default "gateway test CA" */
  readonly name?: string;
  /** @default 3 */
  readonly days?: number;
}

/** Signs `csr` with `ca` (a random positive serial) into `certFile`. */
function signLeaf(ca: TestCa, csr: string, ext: string, certFile: string, days: number): void {
  openssl(
    [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca.certFile,
      "-CAkey",
      ca.keyFile,
      "-set_serial",
      `0x1${randomBytes(8).toString("hex")}`, // a leading 1: positive, no leading zero
      "-days",
      String(days),
      "-extfile",
      ext,
      "-out",
      certFile,
    ],
    ca.dir,
  );
}

/** A self-signed ECDSA P-256 CA. */
export function createCa(opts: CaOptions = {}): TestCa {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "gw-certs-"));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const certFile = join(dir, "ca.pem");
  const keyFile = join(dir, "ca.key");
  try {
    if (!existsSync(certFile)) makeCa(dir, certFile, keyFile, opts);
  } catch (error) {
    // A failed openssl must not leave the directory this call made; a caller's dir is theirs.
    if (opts.dir === undefined) cleanup();
    throw error;
  }
  return { dir, certFile, keyFile, certPem: readFileSync(certFile, "utf8"), cleanup };
}

function makeCa(dir: string, certFile: string, keyFile: string, opts: CaOptions): void {
  openssl(
    [
      "req",
      "-x509",
      ...newKeyArgs("ec"),
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-subj",
      `/CN=${opts.name ?? "gateway test CA"}`,
      "-days",
      String(opts.days ?? 3),
    ],
    dir,
  );
}

/** A leaf certificate signed by `ca`, with a random serial, written next to the CA. */
export function issueLeaf(ca: TestCa, opts: LeafOptions = {}): LeafCert {
  const base = opts.name ?? `leaf-${randomBytes(6).toString("hex")}`;
  const certFile = join(ca.dir, `${base}.pem`);
  const keyFile = join(ca.dir, `${base}.key`);
  const csr = join(ca.dir, `${base}.csr`);
  const ext = join(ca.dir, `${base}.ext`);
  if (opts.name === undefined || !existsSync(certFile)) {
    const sans = (opts.sans ?? TEST_SANS).map((n) => (/^(DNS|IP):/.test(n) ? n : `DNS:${n}`));
    writeFileSync(ext, `subjectAltName=${sans.join(",")}\nextendedKeyUsage=serverAuth\n`);
    const req = ["req", "-new", ...newKeyArgs(opts.key ?? "ec"), "-nodes", "-keyout", keyFile];
    openssl([...req, "-out", csr, "-subj", `/CN=${opts.name ?? TEST_DOMAIN}`], ca.dir);
    signLeaf(ca, csr, ext, certFile, opts.days ?? 2);
  }
  const certPem = readFileSync(certFile, "utf8");
  return {
    certFile,
    keyFile,
    certPem,
    keyPem: readFileSync(keyFile, "utf8"),
    serial: new X509Certificate(certPem).serialNumber,
  };
}
