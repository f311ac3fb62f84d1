import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { connect } from "node:tls";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUNDLE_OPTIONS } from "../../../scripts/bundle-options.mjs";
import { createCa, issueLeaf, type TestCa } from "../../helpers/certs.js";
import { stopChild } from "../../helpers/process.js";

/**
 * The bench's own gateway entry (`bench/gateway-bench.ts`), bundled as the bench bundles it,
 * serving through `--workers 2`: a primary and two `proxy-worker`s of the same bundle.
 */
const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const APP = "5ca1ab1e0ddba11";
const BASE = "app.test.example";

let dir: string;
let ca: TestCa;
let backend: Server;
let gateway: ChildProcess | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gw-bench-entry-"));
  await build({
    ...BUNDLE_OPTIONS,
    entryPoints: [join(ROOT, "bench", "gateway-bench.ts")],
    outfile: join(dir, "gateway-bench.mjs"),
  });
  ca = createCa();
  backend = createServer((_req, res) => res.end(`served by pid ${process.pid}\n`));
  backend.listen(0, "127.0.0.1");
  await once(backend, "listening");
}, 60_000);

afterAll(async () => {
  await stopChild(gateway);
  backend?.close();
  ca?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function get(port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: "127.0.0.1", servername: host, ca: ca.certPem }, () => {
      s.end(`GET / HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`);
    });
    let text = "";
    s.setEncoding("utf8");
    s.on("data", (d: string) => (text += d));
    s.once("end", () => resolve(text));
    s.once("error", reject);
  });
}

describe("bench gateway entry with --workers", () => {
  it("serves through two worker processes and stops them all on SIGTERM", async () => {
    const leaf = issueLeaf(ca, { sans: [`*.${BASE}`] });
    const args = ["--cert", leaf.certFile, "--key", leaf.keyFile, "--app", APP, "--workers", "2"];
    gateway = spawn(process.execPath, [join(dir, "gateway-bench.mjs"), ...args], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const lines = createInterface({ input: gateway.stdout as NodeJS.ReadableStream });
    let port = 0;
    for await (const line of lines) {
      const parsed = (() => {
        try {
          return JSON.parse(line) as { port?: number };
        } catch {
          return {};
        }
      })();
      if (typeof parsed.port === "number") {
        port = parsed.port;
        break;
      }
    }
    expect(port).toBeGreaterThan(0);

    const children = spawnSync("pgrep", ["-P", String(gateway.pid)], { encoding: "utf8" });
    expect(children.stdout.trim().split("\n")).toHaveLength(2);

    const backendPort = (backend.address() as AddressInfo).port;
    for (let k = 0; k < 4; k++) {
      expect(await get(port, `${APP}-${backendPort}.${BASE}`)).toMatch(
        /^HTTP\/1\.1 200 .*served by pid/s,
      );
    }

    const exited = once(gateway, "exit");
    gateway.kill("SIGTERM");
    const [code] = await exited;
    expect(code).toBe(0);
    const left = spawnSync("pgrep", ["-f", join(dir, "gateway-bench.mjs")], { encoding: "utf8" });
    expect(left.stdout.trim()).toBe("");
  }, 60_000);
});
