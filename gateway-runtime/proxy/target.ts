/**
 * Where a connection goes (an app's port, in a route mode), and why the proxy refuses one
 * before it reaches a backend: counted per reason and logged.
 */
import { GatewayError } from "../errors.js";
import type { AppRoute, RouteMode } from "./route.js";

/** Why the proxy refused a connection before it reached a backend; counted and logged. */
export class RejectError extends GatewayError<
  | "E_ROUTE_UNKNOWN_APP"
  | "E_CUSTOM_UNKNOWN_APP"
  | "E_NO_HEALTHY_INSTANCE"
  | "E_PORT_NOT_ALLOWED"
  | "E_LIMIT_APP"
  | "E_LIMIT_IP"
> {}

export interface Target {
  readonly appId: string;
  readonly port: number;
  readonly mode: RouteMode;
  readonly id: string;
  /** Chosen by a custom domain's TXT record rather than by the SNI itself. */
  readonly custom: boolean;
}

export function appTarget(route: AppRoute): Target {
  return { appId: route.id, id: route.id, port: route.port, mode: route.mode, custom: false };
}

export function withApp(error: unknown, appId: string): unknown {
  if (error instanceof Error && !("appId" in error)) Object.assign(error, { appId });
  return error;
}
