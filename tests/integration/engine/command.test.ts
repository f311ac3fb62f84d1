import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commandProvider } from "../../../tools/engine/providers/command.js";
import { ASSET_SIG, type Props, SIG_KEY, secret } from "../../../tools/engine/values.js";
import { tempDir } from "../../../testkit/tmp.js";
import { startSshd, type TestSshd } from "../../helpers/sshd.js";

/**
 * The command stand-in against a real OpenSSH server on loopback: what pulumi-command 1.2.1
 * does on create, update (falling back to create), delete, with stdin, environment,
 * addPreviousOutputInEnv and logging, and CopyToRemote's copy.
 */
const HOST = "127.0.6.2";
const CMD = "urn:pulumi:t::p::command:remote:Command::step";
const COPY = "urn:pulumi:t::p::command:remote:CopyToRemote::copy";
let sshd: TestSshd;
let work: string;
const logged: string[] = [];
const provider = commandProvider({ pwd: "/", log: (l) => logged.push(l) });
let connection: Props;

beforeAll(async () => {
  sshd = await startSshd(HOST, ["FOO", "PULUMI_COMMAND_*"]);
  work = tempDir("engine-cmd-");
  connection = {
    host: HOST,
    privateKey: secret(readFileSync(sshd.clientKey, "utf8")),
    hostKey: sshd.hostKey,
    dialErrorLimit: 2,
  };
});
afterAll(() => sshd?.stop());

const checked = async (news: Props) =>
  (await provider.check({ urn: CMD, olds: undefined, news })).inputs;

describe("command:remote:Command, run for real over SSH", () => {
  it("create runs `create` with stdin; stdout is an output without its trailing newline", async () => {
    const news = await checked({
      connection,
      create: `cat > ${work}/in; echo created`,
      stdin: "hello",
    });
    const { id, outputs } = await provider.create({ urn: CMD, news, preview: false });
    expect(id).toMatch(/^step[0-9a-f]{8}$/);
    expect(outputs.stdout).toBe("created");
    expect(readFileSync(`${work}/in`, "utf8")).toBe("hello");
  });

  it("update without `update` runs `create` again, with the previous stdout in PULUMI_COMMAND_STDOUT", async () => {
    const news = await checked({ connection, create: 'echo "prev=$PULUMI_COMMAND_STDOUT"' });
    const olds = { ...news, stdout: "first", stderr: "" };
    const { outputs } = await provider.update({
      urn: CMD,
      id: "x",
      olds,
      oldInputs: olds,
      news,
      preview: false,
    });
    expect(outputs.stdout).toBe("prev=first");
    const off = { ...news, addPreviousOutputInEnv: false };
    const again = await provider.update({
      urn: CMD,
      id: "x",
      olds,
      oldInputs: olds,
      news: off,
      preview: false,
    });
    expect(again.outputs.stdout).toBe("prev=");
  });

  it("environment reaches the command (the server accepts it); `update` wins over `create`", async () => {
    const news = await checked({
      connection,
      create: "echo create",
      update: "echo update $FOO",
      environment: { FOO: "bar" },
    });
    const { outputs } = await provider.update({
      urn: CMD,
      id: "x",
      olds: news,
      oldInputs: news,
      news,
      preview: false,
    });
    expect(outputs.stdout).toBe("update bar");
  });

  it("logging chooses what is echoed, never what is kept: none echoes nothing", async () => {
    logged.length = 0;
    const loud = await checked({ connection, create: "echo out; echo err >&2" });
    expect((await provider.create({ urn: CMD, news: loud, preview: false })).outputs).toMatchObject(
      { stdout: "out", stderr: "err" },
    );
    // stdout and stderr stream on their own, so their order in the log is not fixed.
    expect([...logged].sort()).toEqual(["  step: err", "  step: out"]);
    logged.length = 0;
    const quiet = await checked({ connection, create: "echo secret-out", logging: "none" });
    expect((await provider.create({ urn: CMD, news: quiet, preview: false })).outputs.stdout).toBe(
      "secret-out",
    );
    expect(logged).toEqual([]);
  });

  it("a failing command fails the step with its status; delete runs `delete`", async () => {
    const bad = await checked({ connection, create: "echo no >&2; exit 3" });
    await expect(provider.create({ urn: CMD, news: bad, preview: false })).rejects.toThrow(
      "step: Process exited with status 3: running the command:\nno",
    );
    const olds = await checked({ connection, create: "true", delete: `touch ${work}/deleted` });
    await provider.delete({ urn: CMD, id: "x", olds, oldInputs: olds });
    expect(readFileSync(`${work}/deleted`, "utf8")).toBe("");
  });

  it("a host key other than the pinned one is refused", async () => {
    const wrong = {
      ...connection,
      hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHzGuh8GZOd2Lp6JxHoj+WEUZMlu8A9t5lnpDMrDUaOF",
    };
    const news = await checked({ connection: wrong, create: "echo never" });
    await expect(provider.create({ urn: CMD, news, preview: false })).rejects.toThrow(/status 255/);
  });
});

describe("command:remote:CopyToRemote", () => {
  it("copies the file asset, creating the parent directories; an update with the same hash copies nothing", async () => {
    const local = join(work, "bundle.mjs");
    writeFileSync(local, "v1");
    const source = { [SIG_KEY]: ASSET_SIG, path: local, hash: "h1" };
    const news = await checked({ connection, source, remotePath: `${work}/deep/dir/bundle.mjs` });
    await provider.create({ urn: COPY, news, preview: false });
    expect(readFileSync(`${work}/deep/dir/bundle.mjs`, "utf8")).toBe("v1");
    writeFileSync(local, "v2");
    await provider.update({
      urn: COPY,
      id: "x",
      olds: news,
      oldInputs: news,
      news,
      preview: false,
    });
    expect(readFileSync(`${work}/deep/dir/bundle.mjs`, "utf8")).toBe("v1");
    const changed = { ...news, source: { ...source, hash: "h2" } };
    await provider.update({
      urn: COPY,
      id: "x",
      olds: news,
      oldInputs: news,
      news: changed,
      preview: false,
    });
    expect(readFileSync(`${work}/deep/dir/bundle.mjs`, "utf8")).toBe("v2");
  });
});
