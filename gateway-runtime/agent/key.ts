/**
 * The CVM's WireGuard key: made once, kept in a 0600 file, so every restart of the agent
 * registers the same public key (and the gateway keeps its address and sessions).
 */
import { readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { Secret } from "../config/secret.js";
import { GatewayError } from "../errors.js";
import { ensureDir, writeFileAtomic } from "../files/atomic.js";
import { generateWgKeyPair, wgPublicKey } from "../keys/wireguard.js";

export interface AgentKey {
  readonly privateKey: Secret;
  readonly publicKey: string;
  /** True when this call made the key. */
  readonly created: boolean;
}

function keyError(message: string): GatewayError<"E_AGENT_KEY"> {
  return new GatewayError("E_AGENT_KEY", message);
}

/**
 * Reads the base64 private key in `file`, or makes one and writes it there (mode 0600, its
 * directory 0700). A file others can read is refused rather than used: the key may be known.
 */
export async function loadOrCreateKey(file: string): Promise<AgentKey> {
  let text: string | undefined;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      throw keyError(`cannot read WireGuard key ${file}: ${(err as Error).message}`);
    }
  }
  if (text !== undefined) {
    const mode = (await stat(file)).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw keyError(
        `WireGuard key ${file} has mode ${mode.toString(8).padStart(4, "0")}: others may read it; make it 0600 or remove it for a new key`,
      );
    }
    const privateKey = text.trim();
    const publicKey = wgPublicKey(privateKey);
    if (publicKey === undefined) throw keyError(`${file} does not hold a WireGuard private key`);
    return { privateKey: Secret.of(privateKey), publicKey, created: false };
  }
  const pair = generateWgKeyPair();
  try {
    await ensureDir(dirname(file));
    await writeFileAtomic(file, `${pair.privateKey}\n`, 0o600);
  } catch (err) {
    throw keyError(`cannot write WireGuard key ${file}: ${(err as Error).message}`);
  }
  return { privateKey: Secret.of(pair.privateKey), publicKey: pair.publicKey, created: true };
}
