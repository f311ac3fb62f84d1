/**
 * A local stand-in for the part of the Cloudflare v4 API the DNS provider calls (the real API
 * cannot be reached from tests). It follows the documented endpoints and envelope:
 *
 *   GET    /client/v4/zones/{zone_id}/dns_records   filters type, name / name.exact,
 *          content / content.exact, page, per_page (default 100); `result_info` pages
 *   POST   /client/v4/zones/{zone_id}/dns_records   TXT (`content`) and CAA (`data`)
 *   DELETE /client/v4/zones/{zone_id}/dns_records/{dns_record_id}
 *
 * Every answer is `{ success, errors: [{code, message}], messages, result, result_info? }`.
 * `Authorization: Bearer <token>` is required. Errors use the API's codes: 6003 (missing or
 * malformed auth header), 9109 (invalid token), 7003 (no such zone / route), 81044 (no such
 * record), 81058 (identical record exists), 9005 (invalid content), 9020 (invalid TTL).
 */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

export interface FakeRecord {
  id: string;
  type: string;
  name: string;
  content: string;
  ttl: number;
  data?: { flags: number; tag: string; value: string };
  proxied: boolean;
  created_on: string;
  modified_on: string;
}

export interface FakeRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly status: number;
}

export interface CloudflareFake {
  /** For the SDK's `baseURL`: `http://127.0.0.1:<port>/client/v4`. */
  readonly baseURL: string;
  readonly token: string;
  readonly zoneId: string;
  readonly zoneName: string;
  /** The zone's records now (copies). */
  records(type?: string, name?: string): FakeRecord[];
  /** Adds a record directly, as if another tool had created it. */
  seed(record: Pick<FakeRecord, "type" | "name" | "content"> & Partial<FakeRecord>): FakeRecord;
  /** Every request answered, in order. */
  readonly requests: FakeRequest[];
  /** Calls `listener` after every change of the records (for mirroring them into a DNS server). */
  onChange(listener: () => void): void;
  /** The next `count` requests fail with `status` and one error `{ code, message }`. */
  failNext(count: number, status: number, code?: number, message?: string): void;
  close(): Promise<void>;
}

const API = "/client/v4";
const NOW = (): string => new Date().toISOString();

function send(
  res: ServerResponse,
  status: number,
  result: unknown,
  errors: { code: number; message: string }[] = [],
  resultInfo?: object,
): void {
  const body = {
    success: errors.length === 0,
    errors,
    messages: [],
    result,
    ...(resultInfo ? { result_info: resultInfo } : {}),
  };
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
}

export async function startCloudflareFake(
  opts: { zoneName?: string; token?: string; zoneId?: string } = {},
): Promise<CloudflareFake> {
  const token = opts.token ?? randomBytes(20).toString("hex");
  const zoneId = opts.zoneId ?? randomBytes(16).toString("hex");
  const zoneName = (opts.zoneName ?? "app.test.example").toLowerCase();
  const records = new Map<string, FakeRecord>();
  const requests: FakeRequest[] = [];
  const failures: { status: number; code: number; message: string }[] = [];
  const listeners: (() => void)[] = [];
  const changed = (): void => {
    for (const l of listeners) l();
  };

  const fqdn = (name: string): string => {
    const n = name.toLowerCase().replace(/\.$/, "");
    if (n === "@" || n === zoneName) return zoneName;
    return n.endsWith(`.${zoneName}`) ? n : `${n}.${zoneName}`;
  };

  const add = (r: Pick<FakeRecord, "type" | "name" | "content"> & Partial<FakeRecord>) => {
    const rec: FakeRecord = {
      id: randomBytes(16).toString("hex"),
      ttl: 1,
      proxied: false,
      created_on: NOW(),
      modified_on: NOW(),
      ...r,
      name: fqdn(r.name),
    };
    records.set(rec.id, rec);
    changed();
    return rec;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<number> => {
    const url = new URL(req.url ?? "/", "http://fake");
    const auth = req.headers.authorization;
    const injected = failures.shift();
    if (injected) {
      send(res, injected.status, null, [{ code: injected.code, message: injected.message }]);
      return injected.status;
    }
    if (auth === undefined || !/^Bearer \S+$/.test(auth)) {
      send(res, 400, null, [{ code: 6003, message: "Invalid request headers" }]);
      return 400;
    }
    if (auth !== `Bearer ${token}`) {
      send(res, 403, null, [{ code: 9109, message: "Invalid access token" }]);
      return 403;
    }
    const m = /^\/client\/v4\/zones\/([^/]+)\/dns_records(?:\/([^/]+))?$/.exec(url.pathname);
    if (!m || m[1] !== zoneId) {
      const message = `Could not route to ${url.pathname.slice(API.length)}, perhaps your object identifier is invalid?`;
      send(res, 404, null, [{ code: 7003, message }]);
      return 404;
    }
    const recordId = m[2];
    if (req.method === "GET" && recordId === undefined) {
      const q = url.searchParams;
      const name = q.get("name.exact") ?? q.get("name");
      const content = q.get("content.exact") ?? q.get("content");
      const type = q.get("type");
      const all = [...records.values()].filter(
        (r) =>
          (type === null || r.type === type) &&
          (name === null || r.name === fqdn(name)) &&
          (content === null || r.content === content),
      );
      const page = Math.max(1, Number(q.get("page") ?? 1));
      const perPage = Math.min(5_000_000, Math.max(5, Number(q.get("per_page") ?? 100)));
      const slice = all.slice((page - 1) * perPage, page * perPage);
      send(res, 200, slice, [], {
        page,
        per_page: perPage,
        count: slice.length,
        total_count: all.length,
        total_pages: Math.max(1, Math.ceil(all.length / perPage)),
      });
      return 200;
    }
    if (req.method === "POST" && recordId === undefined) {
      let body: Record<string, unknown>;
      try {
        body = (await readJson(req)) as Record<string, unknown>;
      } catch {
        send(res, 400, null, [{ code: 9207, message: "Request body is invalid." }]);
        return 400;
      }
      const { type, name, content, ttl, data } = body as {
        type?: string;
        name?: string;
        content?: string;
        ttl?: number;
        data?: { flags?: number; tag?: string; value?: string };
      };
      if (typeof name !== "string" || name === "" || (type !== "TXT" && type !== "CAA")) {
        send(res, 400, null, [{ code: 9005, message: "DNS record type or name is invalid." }]);
        return 400;
      }
      if (ttl !== undefined && ttl !== 1 && (ttl < 30 || ttl > 86400)) {
        send(res, 400, null, [
          {
            code: 9020,
            message: "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.",
          },
        ]);
        return 400;
      }
      if (!(fqdn(name) === zoneName || fqdn(name).endsWith(`.${zoneName}`))) {
        send(res, 400, null, [{ code: 9005, message: "DNS name is not in the zone." }]);
        return 400;
      }
      let rec: Pick<FakeRecord, "type" | "name" | "content"> & Partial<FakeRecord>;
      if (type === "TXT") {
        if (typeof content !== "string" || content === "") {
          send(res, 400, null, [{ code: 9005, message: "Content for TXT record is invalid." }]);
          return 400;
        }
        rec = { type, name, content, ttl: ttl ?? 1 };
      } else {
        const flags = data?.flags ?? 0;
        if (typeof data?.tag !== "string" || typeof data.value !== "string") {
          send(res, 400, null, [{ code: 9005, message: "Content for CAA record is invalid." }]);
          return 400;
        }
        const caa = { flags, tag: data.tag, value: data.value };
        rec = {
          type,
          name,
          content: `${flags} ${caa.tag} "${caa.value}"`,
          data: caa,
          ttl: ttl ?? 1,
        };
      }
      const duplicate = [...records.values()].some(
        (r) => r.type === rec.type && r.name === fqdn(rec.name) && r.content === rec.content,
      );
      if (duplicate) {
        send(res, 400, null, [{ code: 81058, message: "An identical record already exists." }]);
        return 400;
      }
      send(res, 200, add(rec));
      return 200;
    }
    if (req.method === "DELETE" && recordId !== undefined) {
      if (!records.delete(recordId)) {
        send(res, 404, null, [{ code: 81044, message: "Record does not exist." }]);
        return 404;
      }
      changed();
      send(res, 200, { id: recordId });
      return 200;
    }
    send(res, 405, null, [{ code: 10000, message: "Method not allowed" }]);
    return 405;
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://fake");
    handle(req, res).then(
      (status) =>
        requests.push({
          method: req.method ?? "",
          path: url.pathname,
          query: Object.fromEntries(url.searchParams),
          status,
        }),
      () => {
        res.destroy();
      },
    );
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;

  return {
    baseURL: `http://127.0.0.1:${port}${API}`,
    token,
    zoneId,
    zoneName,
    records: (type, name) =>
      [...records.values()]
        .filter(
          (r) =>
            (type === undefined || r.type === type) &&
            (name === undefined || r.name === fqdn(name)),
        )
        .map((r) => structuredClone(r)),
    seed: add,
    requests,
    onChange(listener) {
      listeners.push(listener);
    },
    failNext(count, status, code = 10000, message = "injected failure") {
      for (let i = 0; i < count; i++) failures.push({ status, code, message });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
