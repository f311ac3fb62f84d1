/**
 * The ACME account: from config (`account_url` + `account_key`, created by the Pulumi program)
 * or created on first start and kept in the work directory (`account.key`, then `account.json`,
 * both 0600) for every later start. The key is written before the account is registered: a
 * crash in between leaves a key the CA does not know yet, and the next start registers it
 * (for a known key the CA answers with the existing account). An `account.json` made for
 * another directory URL is not reused; that account's files are kept as
 * `account-<time>.key` / `.json` rather than overwritten.
 */
import { readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { Client, crypto as acmeCrypto } from "acme-client";
import type { Logger } from "../../log/index.js";
import { writeFileAtomic } from "../../files/atomic.js";
import { CertError, reasonOf } from "../errors.js";

export interface AccountSettings {
  readonly directoryUrl: string;
  readonly workdir: string;
  readonly accountUrl?: string | undefined;
  /** PEM private key of `accountUrl`. */
  readonly accountKey?: string | undefined;
  readonly contactEmail?: string | undefined;
  readonly log: Logger;
}

export interface Account {
  readonly client: Client;
  readonly url: string;
  /** Where it came from, for logs. */
  readonly source: "config" | "workdir" | "created";
}

interface AccountFile {
  readonly url: string;
  readonly directoryUrl: string;
  readonly createdAt: string;
}

export const ACCOUNT_KEY_FILE = "account.key";
export const ACCOUNT_FILE = "account.json";

/** acme-client's status polling is not used (we poll ourselves); keep its defaults small. */
function newClient(directoryUrl: string, accountKey: string, accountUrl?: string): Client {
  return new Client({
    directoryUrl,
    accountKey,
    ...(accountUrl === undefined ? {} : { accountUrl }),
    backoffAttempts: 5,
    backoffMin: 500,
    backoffMax: 5000,
  });
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new CertError("E_CERT_STORE", `cannot read ${path}: ${reasonOf(e)}`, { cause: e });
  }
}

function parseAccountFile(text: string, path: string): AccountFile {
  try {
    const v = JSON.parse(text) as Partial<AccountFile>;
    if (typeof v.url === "string" && typeof v.directoryUrl === "string") {
      return { url: v.url, directoryUrl: v.directoryUrl, createdAt: String(v.createdAt ?? "") };
    }
  } catch {
    // reported below
  }
  throw new CertError("E_CERT_STORE", `${path} is not a valid account file`);
}

/** The account to use; registers a new one (needs the CA) only when none is known. */
export async function loadOrCreateAccount(s: AccountSettings): Promise<Account> {
  if (s.accountUrl !== undefined && s.accountKey !== undefined) {
    return {
      client: newClient(s.directoryUrl, s.accountKey, s.accountUrl),
      url: s.accountUrl,
      source: "config",
    };
  }
  const keyPath = join(s.workdir, ACCOUNT_KEY_FILE);
  const filePath = join(s.workdir, ACCOUNT_FILE);
  let key = await readIfExists(keyPath);
  const fileText = await readIfExists(filePath);
  if (key !== undefined && fileText !== undefined) {
    const file = parseAccountFile(fileText, filePath);
    if (file.directoryUrl === s.directoryUrl) {
      return { client: newClient(s.directoryUrl, key, file.url), url: file.url, source: "workdir" };
    }
    s.log.warn(
      { previous: file.directoryUrl, now: s.directoryUrl },
      "the stored ACME account belongs to another directory; registering a new one",
    );
    const stamp = new Date().toISOString().replace(/:/g, "-");
    await rename(keyPath, join(s.workdir, `account-${stamp}.key`));
    await rename(filePath, join(s.workdir, `account-${stamp}.json`));
    key = undefined;
  }
  if (key === undefined) {
    key = (await acmeCrypto.createPrivateEcdsaKey("P-256")).toString();
    await writeStoreFile(keyPath, key);
  }
  const client = newClient(s.directoryUrl, key);
  try {
    await client.createAccount({
      termsOfServiceAgreed: true,
      ...(s.contactEmail ? { contact: [`mailto:${s.contactEmail}`] } : {}),
    });
  } catch (e) {
    throw new CertError("E_CERT_ACME", `registering an ACME account failed: ${reasonOf(e)}`, {
      cause: e,
    });
  }
  const url = client.getAccountUrl();
  const file: AccountFile = {
    url,
    directoryUrl: s.directoryUrl,
    createdAt: new Date().toISOString(),
  };
  await writeStoreFile(filePath, `${JSON.stringify(file, null, 2)}\n`);
  s.log.info({ accountUrl: url }, "registered a new ACME account");
  return { client, url, source: "created" };
}

async function writeStoreFile(path: string, data: string): Promise<void> {
  try {
    await writeFileAtomic(path, data, 0o600);
  } catch (e) {
    throw new CertError("E_CERT_STORE", `cannot write ${path}: ${reasonOf(e)}`, { cause: e });
  }
}
