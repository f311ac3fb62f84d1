/**
 * Stand-in for pulumi-command 1.2.1's `command:remote:Command` and `command:remote:CopyToRemote`
 * (its provider binary cannot be installed here), following the provider's documented and
 * coded behaviour:
 * - Check fills the connection defaults (user root, port 22, dialErrorLimit 10, perDialTimeout 15);
 * - Diff compares old and new inputs: adding or removing `triggers` replaces, any other change
 *   updates (the SDK's `replaceOnChanges: ["triggers[*]"]` makes a changed element replace);
 * - Create runs `create`; Update runs `update`, else `create`; Delete runs `delete` if set;
 *   the previous stdout/stderr go in PULUMI_COMMAND_STDOUT/STDERR unless
 *   `addPreviousOutputInEnv` is false; `logging` only chooses which streams are echoed to the
 *   log, stdout and stderr are always outputs (one trailing newline trimmed);
 * - CopyToRemote copies a file asset (parents created) on create, and on update only when the
 *   asset's hash or the remote path changed; its delete does nothing.
 * Not covered (refused with an error naming the input): password auth, `proxy`, archives.
 */
import { randomBytes } from "node:crypto";
import { isAbsolute, join } from "node:path";
import { isAsset, type Props, reveal, type Value } from "../values.js";
import { type Connection, copyToRemote, runRemote } from "./ssh.js";
import { type CheckResult, type DiffResult, type Provider, ProviderError } from "./types.js";

const CONNECTION_DEFAULTS = { user: "root", port: 22, dialErrorLimit: 10, perDialTimeout: 15 };
const COMMAND = "command:remote:Command";
const COPY = "command:remote:CopyToRemote";

const typeOf = (urn: string) => (urn.split("::")[2] ?? "").split("$").pop() ?? "";
const nameOf = (urn: string) => urn.split("::").pop() ?? urn;

function connectionOf(props: Props, urn: string): Connection {
  const c = reveal(props.connection ?? null) as Record<string, Value> | null;
  if (c === null || typeof c !== "object" || typeof c.host !== "string") {
    throw new ProviderError(`${urn}: connection.host is required`);
  }
  for (const unsupported of ["password", "proxy", "privateKeyPassword"]) {
    if (c[unsupported] !== undefined && c[unsupported] !== null) {
      throw new ProviderError(
        `${urn}: connection.${unsupported} is not supported by this engine's command stand-in`,
      );
    }
  }
  const str = (k: string) => (typeof c[k] === "string" ? (c[k] as string) : undefined);
  const num = (k: string, d: number) => (typeof c[k] === "number" ? (c[k] as number) : d);
  const privateKey = str("privateKey");
  const hostKey = str("hostKey");
  const agentSocketPath = str("agentSocketPath");
  return {
    host: c.host,
    port: num("port", 22),
    user: str("user") ?? "root",
    dialErrorLimit: num("dialErrorLimit", 10),
    perDialTimeout: num("perDialTimeout", 15),
    ...(privateKey === undefined ? {} : { privateKey }),
    ...(hostKey === undefined ? {} : { hostKey }),
    ...(agentSocketPath === undefined ? {} : { agentSocketPath }),
  };
}

const comparable = (props: Props) =>
  Object.fromEntries(Object.entries(props).filter(([k]) => k !== "version" && !k.startsWith("__")));

export interface CommandProviderOptions {
  /** The program's working directory: relative asset paths resolve from it. */
  pwd: string;
  log: (line: string) => void;
}

export function commandProvider(options: CommandProviderOptions): Provider {
  const { log } = options;
  const trim = (s: string) => (s.endsWith("\n") ? s.slice(0, -1) : s);

  async function runStep(urn: string, props: Props, script: string, previous?: Props) {
    const conn = connectionOf(props, urn);
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(
      (reveal(props.environment ?? null) ?? {}) as Record<string, Value>,
    )) {
      env[k] = String(v);
    }
    if (previous && props.addPreviousOutputInEnv !== false) {
      if (previous.stdout) env.PULUMI_COMMAND_STDOUT = String(previous.stdout);
      if (previous.stderr) env.PULUMI_COMMAND_STDERR = String(previous.stderr);
    }
    const logging = (props.logging as string | undefined) ?? "stdoutAndStderr";
    const echo = (stream: "stdout" | "stderr", line: string) => {
      if (logging === "stdoutAndStderr" || logging === stream) log(`  ${nameOf(urn)}: ${line}`);
    };
    const stdin = reveal(props.stdin ?? null);
    const result = await runRemote(conn, script, {
      ...(typeof stdin === "string" && stdin !== "" ? { stdin } : {}),
      env,
      onLine: echo,
      log,
    });
    if (result.code !== 0) {
      const shown =
        logging === "none"
          ? "(output not shown: logging is none)"
          : `${result.stdout}${result.stderr}`;
      throw new ProviderError(
        `${nameOf(urn)}: Process exited with status ${result.code}: running the command:\n${shown}`,
      );
    }
    return { stdout: trim(result.stdout), stderr: trim(result.stderr) };
  }

  async function copy(urn: string, props: Props) {
    const source = props.source;
    if (!isAsset(source) || typeof source.path !== "string") {
      throw new ProviderError(
        `${urn}: source must be a file asset for this engine's command stand-in`,
      );
    }
    const local = isAbsolute(source.path) ? source.path : join(options.pwd, source.path);
    await copyToRemote(connectionOf(props, urn), local, String(props.remotePath), log);
  }

  return {
    async check({ news }): Promise<CheckResult> {
      const connection = reveal(news.connection ?? null);
      if (connection === null || typeof connection !== "object" || Array.isArray(connection)) {
        return {
          inputs: news,
          failures: [{ property: "connection", reason: "missing required property 'connection'" }],
        };
      }
      return {
        inputs: { ...news, connection: { ...CONNECTION_DEFAULTS, ...connection } },
        failures: [],
      };
    },
    async diff({ oldInputs, news }): Promise<DiffResult> {
      const [a, b] = [comparable(oldInputs), comparable(news)];
      const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter(
        (k) => JSON.stringify(reveal(a[k] ?? null)) !== JSON.stringify(reveal(b[k] ?? null)),
      );
      const triggersAddedOrRemoved = (a.triggers === undefined) !== (b.triggers === undefined);
      return {
        changes: keys.length > 0 ? "some" : "none",
        replaces: triggersAddedOrRemoved ? ["triggers"] : [],
        deleteBeforeReplace: false,
      };
    },
    async create({ urn, news }) {
      const id = `${nameOf(urn)}${randomBytes(4).toString("hex")}`;
      if (typeOf(urn) === COPY) {
        await copy(urn, news);
        return { id, outputs: news };
      }
      if (typeOf(urn) !== COMMAND) throw new ProviderError(`${urn}: unknown command resource type`);
      const create = typeof news.create === "string" ? news.create : undefined;
      const out =
        create === undefined ? { stdout: "", stderr: "" } : await runStep(urn, news, create);
      return { id, outputs: { ...news, ...out } };
    },
    async update({ urn, olds, oldInputs, news }) {
      if (typeOf(urn) === COPY) {
        const moved = JSON.stringify(oldInputs.remotePath) !== JSON.stringify(news.remotePath);
        const hash = (p: Props) => (isAsset(p.source) ? p.source.hash : undefined);
        if (moved || hash(oldInputs) !== hash(news)) await copy(urn, news);
        return { outputs: news };
      }
      const script =
        typeof news.update === "string"
          ? news.update
          : typeof news.create === "string"
            ? news.create
            : undefined;
      const out =
        script === undefined
          ? { stdout: olds.stdout ?? "", stderr: olds.stderr ?? "" }
          : await runStep(urn, news, script, olds);
      return { outputs: { ...news, ...out } };
    },
    async delete({ urn, olds }) {
      if (typeOf(urn) === COPY) return;
      if (typeof olds.delete === "string") await runStep(urn, olds, olds.delete, olds);
    },
  };
}
