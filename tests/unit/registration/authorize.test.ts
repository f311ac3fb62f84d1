import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppInfoJson } from "../../../gateway-runtime/attest/app-info.js";
import { authorize, authorizerFromConfig } from "../../../gateway-runtime/auth/index.js";
import { GatewayError } from "../../../gateway-runtime/errors.js";

const INFO: AppInfoJson = {
  app_id: "3763bc34552cf3a27ff71ad5f7a90471562a1a2d",
  compose_hash: "aa".repeat(32),
  instance_id: "c3714eb66990eace777b4e664c16e09375dec4c9",
  device_id: "bb".repeat(32),
  mr_system: "cc".repeat(32),
  mr_aggregated: "dd".repeat(32),
  os_image_hash: "ee".repeat(32),
  key_provider_info: "7b7d",
  init_script_hashes: [],
};

interface Seen {
  method: string | undefined;
  path: string | undefined;
  contentType: string | undefined;
  body: string;
}

let server: Server;
let base: string;
const seen: Seen[] = [];

/** /status/<code> answers that code; /slow/<ms> answers 200 after <ms>. */
beforeAll(async () => {
  server = createServer((req: IncomingMessage, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      seen.push({
        method: req.method,
        path: req.url,
        contentType: req.headers["content-type"],
        body,
      });
      const [, kind, arg] = new URL(req.url ?? "/", "http://auth").pathname.split("/");
      if (kind === "slow") {
        setTimeout(() => res.writeHead(200).end("late"), Number(arg));
        return;
      }
      const status = Number(arg);
      if (status >= 300 && status < 400) res.setHeader("location", "/status/200");
      res.writeHead(status).end(status >= 400 ? `denied:\n  app ${INFO.app_id} not allowed` : "");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

async function outcome(url: string, timeoutMs = 2_000): Promise<{ code: string; message: string }> {
  try {
    await authorize(INFO, { url, timeoutMs });
    return { code: "allowed", message: "" };
  } catch (err) {
    if (err instanceof GatewayError) return { code: err.code, message: err.message };
    throw err;
  }
}

describe("authorize", () => {
  it("POSTs dstack's AppInfo JSON and admits on 200", async () => {
    const n = seen.length;
    expect((await outcome(`${base}/status/200`)).code).toBe("allowed");
    expect(seen[n]).toEqual({
      method: "POST",
      path: "/status/200",
      contentType: "application/json",
      body: JSON.stringify(INFO),
    });
  });

  it.each([201, 204])("admits on %i", async (status) => {
    expect((await outcome(`${base}/status/${status}`)).code).toBe("allowed");
  });

  it.each([500, 403, 404])("denies on %i, quoting the answer", async (status) => {
    const o = await outcome(`${base}/status/${status}`);
    expect(o.code).toBe("E_AUTH_DENIED");
    expect(o.message).toBe(
      `app ${INFO.app_id} is not authorized: ${base}/status/${status} answered ${status} (denied: app ${INFO.app_id} not allowed)`,
    );
  });

  it("denies on a redirect instead of following it", async () => {
    const n = seen.length;
    const o = await outcome(`${base}/status/302`);
    expect(o.code).toBe("E_AUTH_DENIED");
    expect(o.message).toContain("answered 302");
    expect(seen.length).toBe(n + 1);
  });

  it("denies when the service is slower than the timeout, without waiting for it", async () => {
    const started = performance.now();
    const o = await outcome(`${base}/slow/3000`, 200);
    expect(o).toEqual({
      code: "E_AUTH_UNAVAILABLE",
      message: `authorization service ${base}/slow/3000 did not answer within 200 ms`,
    });
    expect(performance.now() - started).toBeLessThan(1_500);
  });

  it("keeps query strings and credentials out of its messages", async () => {
    const denied = await outcome(`${base}/status/500?token=secret`);
    expect(denied.code).toBe("E_AUTH_DENIED");
    expect(denied.message).not.toContain("secret");
    expect(denied.message).toContain(`${base}/status/500 answered 500`);
    // fetch refuses URLs with credentials, quoting them; the message must not.
    const refused = await outcome(
      `${base.replace("//", "//user:secret@")}/status/200?token=secret`,
    );
    expect(refused.code).toBe("E_AUTH_UNAVAILABLE");
    expect(refused.message).not.toContain("secret");
  });

  it("denies when nothing listens", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const o = await outcome(`http://127.0.0.1:${port}/`);
    expect(o.code).toBe("E_AUTH_UNAVAILABLE");
    expect(o.message).toContain("could not be reached");
  });
});

describe("authorizerFromConfig", () => {
  it("is undefined when authorization is off", () => {
    expect(authorizerFromConfig({ enabled: false, timeout: 5_000 })).toBeUndefined();
  });

  it("asks the configured URL within the configured timeout", async () => {
    const ask = authorizerFromConfig({ enabled: true, url: `${base}/slow/2000`, timeout: 100 });
    await expect(ask?.(INFO)).rejects.toMatchObject({ code: "E_AUTH_UNAVAILABLE" });
  });
});
