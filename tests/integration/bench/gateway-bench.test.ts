import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Readable } from "node:stream";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { probe, readLineUntil } from "../../../bench/lib/net.js";
import { BUNDLE_OPTIONS } from "../../../scripts/bundle-options.mjs";
import { createCa, issueLeaf, type TestCa } from "../../../testkit/certs.js";
import { stopChild } from "../../../testkit/process.js";

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

describe("bench gateway entry with --workers", () => {
  it("serves through two worker processes and stops them all on SIGTERM", async () => {
    const leaf = issueLeaf(ca, { sans: [`*.${BASE}`] });
    const args = ["--cert", leaf.certFile, "--key", leaf.keyFile, "--app", APP, "--workers", "2"];
    gateway = spawn(process.execPath, [join(dir, "gateway-bench.mjs"), ...args], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const port = await readLineUntil(
      gateway.stdout as Readable,
      (line) => {
        try {
          const parsed = JSON.parse(line) as { port?: unknown };
          return typeof parsed.port === "number" ? parsed.port : undefined;
        } catch {
          return undefined;
        }
      },
      30_000,
      "bench gateway with 2 workers",
    );

    const children = spawnSync("pgrep", ["-P", String(gateway.pid)], { encoding: "utf8" });
    expect(children.stdout.trim().split("\n")).toHaveLength(2);

    const backendPort = (backend.address() as AddressInfo).port;
    const body = `served by pid ${process.pid}\n`;
    for (let k = 0; k < 4; k++) {
      expect(await probe(port, `${APP}-${backendPort}.${BASE}`, "/")).toMatchObject({
        status: "HTTP/1.1 200 OK",
        bodyBytes: body.length,
      });
    }

    const exited = once(gateway, "exit");
    gateway.kill("SIGTERM");
    const [code] = await exited;
    expect(code).toBe(0);
    const left = spawnSync("pgrep", ["-f", join(dir, "gateway-bench.mjs")], { encoding: "utf8" });
    expect(left.stdout.trim()).toBe("");
  }, 60_000);
});
