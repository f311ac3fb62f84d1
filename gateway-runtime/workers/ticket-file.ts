/**
 * The session ticket keys kept in a file (mode 0600, beside the state), so a ticket issued by one
 * generation of the gateway resumes on the next: a hand-over or a restart would otherwise start
 * with fresh keys and turn every returning client's resumption into a full handshake. The
 * primary alone writes it, after each rotation. On disk the keys outlive the process, which
 * memory-only keys did not: the file is the service user's only, in its 0700 state directory,
 * and holds at most the two keys that decrypt tickets of the last two rotation periods.
 */
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { ensureDir, writeFileAtomic } from "../files/atomic.js";
import type { TicketKeyRing, TicketKeys } from "../proxy/index.js";

interface Stored {
  readonly version: 1;
  /** When `keys.current` became current. */
  readonly rotatedAtMs: number;
  readonly keys: TicketKeys;
}

/**
 * Takes the file's keys into `ring` when they are still good, rotating once when the current
 * one is older than `rotationMs` (its tickets stay accepted for one more period). Returns when
 * the current key was made: the next rotation is due `rotationMs` after it. A missing or
 * unreadable file, or keys older than two periods, leave the ring's own fresh keys.
 */
export async function loadTicketKeys(
  path: string,
  ring: TicketKeyRing,
  rotationMs: number,
  now = Date.now(),
): Promise<number> {
  let stored: Stored;
  try {
    stored = JSON.parse(await readFile(path, "utf8")) as Stored;
    if (stored.version !== 1 || !Number.isFinite(stored.rotatedAtMs)) return now;
  } catch {
    return now;
  }
  const age = now - stored.rotatedAtMs;
  if (age < 0 || age >= 2 * rotationMs) return now;
  try {
    ring.load(stored.keys);
  } catch {
    return now; // malformed keys: start afresh rather than refuse to serve
  }
  if (age < rotationMs) return stored.rotatedAtMs;
  ring.rotate();
  return now;
}

/** The proxy starts before registration creates the state directory: made here if missing. */
export async function saveTicketKeys(
  path: string,
  ring: TicketKeyRing,
  rotatedAtMs: number,
): Promise<void> {
  const stored: Stored = { version: 1, rotatedAtMs, keys: ring.export() };
  await ensureDir(dirname(path));
  await writeFileAtomic(path, `${JSON.stringify(stored)}\n`, 0o600);
}
