export {
  ADMIN_TOKEN_ENV,
  adminToken,
  type AdminAuth,
  authenticate,
  authFailures,
  parseHtpasswd,
  resolveAdminAuth,
} from "./auth.js";
export { METRICS_CONTENT_TYPE, renderMetrics } from "./metrics.js";
export { AdminServer, type AdminServerOptions, type AdminSources } from "./server.js";
export { getInfoResponse, statusResponse } from "./status.js";
export type { AdminView } from "./view.js";
