/**
 * Real etcd clusters (Debian package `etcd-server`) on 127.0.0.1 for tests: N members, each its
 * own process with free client and peer ports and a data directory in one temp directory, fast
 * elections so quorum changes settle in about a second. Members can be stopped and started
 * again with their data (a host failing and coming back). `close()` kills every process and
 * removes the directory; call it in afterAll.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { get } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { until } from "./poll.js";
import { freePort, stopChild } from "./process.js";

export interface EtcdMember {
  readonly name: string;
  /** `http://127.0.0.1:<port>` */
  readonly clientUrl: string;
  readonly running: boolean;
}

export interface EtcdCluster {
  readonly members: readonly EtcdMember[];
  /** Every member's client URL, the endpoints a gateway host is configured with. */
  readonly endpoints: string[];
  /** SIGKILL, as a host crash; the member keeps its data directory. */
  kill(index: number): Promise<void>;
  /** Starts a stopped member again with its data. */
  start(index: number): Promise<void>;
  /** SIGSTOP: the member stops answering but its connections stay open (a partition). */
  freeze(index: number): void;
  /** SIGCONT after `freeze`. */
  thaw(index: number): void;
  /** Waits until the running members agree on a leader (or `timeoutMs` passes). */
  healthy(timeoutMs?: number): Promise<void>;
  /** The last output of every member, for failure messages. */
  log(): string;
  close(): Promise<void>;
}

/** GET /health of one member: true once it knows a leader. */
function memberHealthy(clientUrl: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get(`${clientUrl}/health`, { timeout: 1000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
      });
      res.on("end", () => resolve(res.statusCode === 200 && body.includes('"true"')));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
  });
}

interface Member {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  proc: ChildProcess | undefined;
  output: string;
}

export async function startEtcdCluster(size: number): Promise<EtcdCluster> {
  // CI installs it (.ci/run): a missing etcd fails these tests, never skips them.
  if (spawnSync("etcd", ["--version"], { timeout: 10_000 }).status !== 0)
    throw new Error("etcd is missing: apt-get install etcd-server");
  const dir = mkdtempSync(join(tmpdir(), "gw-etcd-"));
  const members: Member[] = [];
  for (let k = 0; k < size; k++) {
    members.push({
      name: `m${k}`,
      clientUrl: `http://127.0.0.1:${await freePort()}`,
      peerUrl: `http://127.0.0.1:${await freePort()}`,
      dataDir: join(dir, `m${k}`),
      proc: undefined,
      output: "",
    });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(",");

  const launch = (m: Member): void => {
    const proc = spawn(
      "etcd",
      [
        `--name=${m.name}`,
        `--data-dir=${m.dataDir}`,
        `--listen-client-urls=${m.clientUrl}`,
        `--advertise-client-urls=${m.clientUrl}`,
        `--listen-peer-urls=${m.peerUrl}`,
        `--initial-advertise-peer-urls=${m.peerUrl}`,
        `--initial-cluster=${initialCluster}`,
        "--initial-cluster-state=new",
        `--initial-cluster-token=${dir}`,
        // Fast failure detection: the tests take members away and wait for the rest to notice.
        "--heartbeat-interval=50",
        "--election-timeout=500",
        "--logger=zap",
        "--log-level=warn",
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
    );
    m.proc = proc;
    const collect = (d: Buffer): void => {
      m.output = (m.output + d.toString()).slice(-20_000);
    };
    proc.stdout?.on("data", collect);
    proc.stderr?.on("data", collect);
    proc.on("error", (error) => collect(Buffer.from(`spawn failed: ${error.message}\n`)));
  };

  const log = () => members.map((m) => `--- ${m.name}\n${m.output}`).join("\n");
  const healthy = async (timeoutMs = 15_000): Promise<void> => {
    const running = members.filter((m) => m.proc);
    await until(
      "etcd members to agree on a leader",
      async () =>
        (await Promise.all(running.map((m) => memberHealthy(m.clientUrl)))).every(Boolean),
      timeoutMs,
      { context: log },
    );
  };
  const close = async (): Promise<void> => {
    await Promise.all(members.map((m) => stopChild(m.proc, 0)));
    for (const m of members) m.proc = undefined;
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    for (const m of members) launch(m);
    await healthy();
  } catch (error) {
    await close();
    throw error;
  }
  return {
    members: members.map((m) => ({
      name: m.name,
      clientUrl: m.clientUrl,
      get running() {
        return m.proc !== undefined;
      },
    })),
    endpoints: members.map((m) => m.clientUrl),
    async kill(index) {
      const m = members[index] as Member;
      const proc = m.proc;
      m.proc = undefined;
      await stopChild(proc, 0);
    },
    async start(index) {
      const m = members[index] as Member;
      if (!m.proc) launch(m);
    },
    freeze(index) {
      (members[index] as Member).proc?.kill("SIGSTOP");
    },
    thaw(index) {
      (members[index] as Member).proc?.kill("SIGCONT");
    },
    healthy,
    log,
    close,
  };
}
