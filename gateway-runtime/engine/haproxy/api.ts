/**
 * HAProxy's runtime API over a Unix socket (its management guide, "Unix Socket commands"):
 * the worker's `stats socket` for servers, maps and certificates, the master CLI (`-S`) for
 * `reload` and `show proc`. One command per connection: HAProxy answers it and closes, so an
 * answer never has to be split from the next one's, and a stuck command costs one socket.
 *
 * HAProxy answers in free text and an error is not marked as one; each command says what a
 * success looks like (most answer nothing at all), and anything else is an `HaproxyApiError`
 * with the command and HAProxy's words.
 */
import { connect } from "node:net";
import { GatewayError } from "../../errors.js";

/** Bound on one command, connection included. */
export const COMMAND_TIMEOUT_MS = 5_000;

export class HaproxyApiError extends GatewayError<"E_HAPROXY_API" | "E_HAPROXY_UNREACHABLE"> {
  readonly command: string;
  readonly answer: string;
  constructor(
    code: "E_HAPROXY_API" | "E_HAPROXY_UNREACHABLE",
    command: string,
    answer: string,
    cause?: unknown,
  ) {
    super(code, `haproxy "${command}": ${answer.trim() || "(no answer)"}`, { cause });
    this.name = "HaproxyApiError";
    this.command = command;
    this.answer = answer;
  }
}

/** Sends `text` (a command line, with its payload if any), half-closes, reads to the end. */
export function rawCommand(
  socketPath: string,
  text: string,
  timeoutMs = COMMAND_TIMEOUT_MS,
): Promise<string> {
  const command = text.split("\n")[0] ?? "";
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new HaproxyApiError("E_HAPROXY_UNREACHABLE", command, `no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(new HaproxyApiError("E_HAPROXY_UNREACHABLE", command, error.message, error));
    });
    socket.once("end", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString("utf8"));
    });
    // The master CLI waits for the end of its input before it answers and closes.
    socket.end(text.endsWith("\n") ? text : `${text}\n`);
  });
}

/** What a successful answer looks like, per command (its first words). */
const SUCCESS: readonly (readonly [RegExp, RegExp])[] = [
  [/^add server /, /New server registered/],
  [/^del server /, /Server deleted/],
  [/^set ssl cert /, /Transaction (created|updated)/],
  [/^commit ssl cert /, /Success!/],
  [/^show /, /^(?!Unknown command)/],
  // enable/disable/set server, shutdown sessions, add/del/set map: silent on success.
  [/^/, /^\s*$/],
];

function succeeded(command: string, answer: string): boolean {
  for (const [which, ok] of SUCCESS) if (which.test(command)) return ok.test(answer);
  return false;
}

/** A server's state as `show servers state` reports it. */
export interface ServerState {
  readonly backend: string;
  readonly name: string;
  readonly address: string;
  /** Not in maintenance (forced, inherited or resolver) and not draining. */
  readonly ready: boolean;
}

/** SRV_ADMF_FMAINT | SRV_ADMF_IMAINT | SRV_ADMF_RMAINT, then the drain flags (HAProxy's server.h). */
const MAINT_FLAGS = 0x01 | 0x02 | 0x20;
const DRAIN_FLAGS = 0x08 | 0x10;

/** Parses `show servers state` (format version 1). */
export function parseServersState(text: string): ServerState[] {
  const states: ServerState[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#") || /^\d+$/.test(line)) continue;
    const f = line.split(" ");
    const admin = Number(f[6]);
    if (f.length < 7 || !Number.isInteger(admin)) continue;
    states.push({
      backend: f[1] as string,
      name: f[3] as string,
      address: f[4] as string,
      ready: (admin & (MAINT_FLAGS | DRAIN_FLAGS)) === 0,
    });
  }
  return states;
}

/** `show stat` CSV as one record per line, by column name. */
export function parseStatCsv(text: string): Record<string, string>[] {
  const lines = text.split("\n").filter((line) => line !== "");
  const head = lines.shift();
  if (head === undefined || !head.startsWith("# ")) return [];
  const names = head.slice(2).split(",");
  return lines.map((line) => {
    const values = line.split(",");
    return Object.fromEntries(names.map((name, i) => [name, values[i] ?? ""]));
  });
}

/** `show map <file>`: key → value (`<ref> <key> <value>` lines). */
export function parseMap(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^0x[0-9a-f]+ (\S+) (.*)$/.exec(line);
    if (m) entries.set(m[1] as string, m[2] as string);
  }
  return entries;
}

export class HaproxyApi {
  readonly #socket: string;
  readonly #timeoutMs: number;

  constructor(socketPath: string, timeoutMs = COMMAND_TIMEOUT_MS) {
    this.#socket = socketPath;
    this.#timeoutMs = timeoutMs;
  }

  /** Runs one command; throws `HaproxyApiError` unless HAProxy answered it as a success. */
  async run(command: string, payload?: string): Promise<string> {
    const text = payload === undefined ? command : `${command} <<\n${payload.trimEnd()}\n\n`;
    const answer = await rawCommand(this.#socket, text, this.#timeoutMs);
    if (!succeeded(command, answer)) throw new HaproxyApiError("E_HAPROXY_API", command, answer);
    return answer;
  }

  async serversState(backend?: string): Promise<ServerState[]> {
    return parseServersState(await this.run(`show servers state${backend ? ` ${backend}` : ""}`));
  }

  async stat(): Promise<Record<string, string>[]> {
    return parseStatCsv(await this.run("show stat"));
  }

  async showMap(file: string): Promise<Map<string, string>> {
    return parseMap(await this.run(`show map ${file}`));
  }

  /** Replaces the certificate HAProxy loaded from `file` with `pem` (chain and key), no reload. */
  async setCertificate(file: string, pem: string): Promise<void> {
    await this.run(`set ssl cert ${file}`, pem);
    await this.run(`commit ssl cert ${file}`);
  }
}
