/**
 * Reading an admin call's request: the HTTP methods it takes, its JSON body (POST) or query
 * (GET) as one object, checked with a schema. A malformed request is a 400 with a stable code
 * (`E_RPC_BAD_JSON` for a body that is not JSON, `E_RPC_BAD_REQUEST` for one of another shape)
 * before anything is done.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { z } from "zod";
import { readBody, rpcError } from "../rpc/http.js";

/** Bodies of admin calls are small; the port policy calls take more (a policy lists ports). */
export const MAX_BODY_BYTES = 4096;

/** Refuses any other HTTP method with 405 and an Allow header. */
export function allow(req: IncomingMessage, res: ServerResponse, methods: readonly string[]): void {
  if (methods.includes(req.method ?? "")) return;
  res.setHeader("allow", methods.join(", "));
  throw rpcError(
    "E_RPC_METHOD_NOT_ALLOWED",
    `${req.method} not allowed here; use ${methods.join(" or ")}`,
  );
}

/**
 * The request as an object: a POST's JSON body (empty: `{}`, as dstack's prpc takes it), or a
 * GET's query parameters (strings; `json`, prpc's flag for a JSON answer, left out).
 */
export async function requestObject(
  req: IncomingMessage,
  url: URL,
  maxBytes = MAX_BODY_BYTES,
): Promise<unknown> {
  if (req.method === "GET") {
    const query = Object.fromEntries(url.searchParams);
    delete query.json;
    return query;
  }
  const body = (await readBody(req, maxBytes)).toString("utf8");
  if (body.trim() === "") return {};
  try {
    return JSON.parse(body);
  } catch {
    throw rpcError("E_RPC_BAD_JSON", "request body is not JSON");
  }
}

/** `raw` checked against `schema`; the first problem is the 400's message, prefixed by `call`. */
export function parseRequest<S extends z.ZodType>(
  schema: S,
  raw: unknown,
  call: string,
): z.infer<S> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw rpcError("E_RPC_BAD_REQUEST", `${call}: ${parsed.error.issues[0]?.message}`);
  }
  return parsed.data;
}
