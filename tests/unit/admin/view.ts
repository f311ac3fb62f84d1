// A fixed admin view for the admin tests: two apps, three instances (one stale), ACME on.
import type { AdminView } from "../../../gateway-runtime/admin/index.js";

export const NOW = Date.UTC(2026, 10, 26, 12, 0, 0);

export function adminView(overrides: Partial<AdminView> = {}): AdminView {
  return {
    nowMs: NOW,
    startedAtMs: NOW - 60_000,
    baseDomain: "app.test.example",
    healthyHandshakeAgeMs: 180_000,
    workers: { running: 2, answered: 2 },
    proxy: {
      apps: {
        bb02: { active: 0, total: 3, bytesToBackend: 30, bytesToClient: 300, rejected: {} },
        aa01: {
          active: 2,
          total: 7,
          bytesToBackend: 1500,
          bytesToClient: 64000,
          rejected: { E_LIMIT_APP: 1 },
        },
      },
      rejected: { E_ROUTE_UNKNOWN_APP: 4, E_LIMIT_APP: 1 },
      instances: { aa0101: 2 },
      connectFailures: { aa0102: 3 },
      certificates: [
        { serial: "0A", notAfterMs: Date.UTC(2027, 1, 1) },
        { serial: "0A", notAfterMs: Date.UTC(2027, 1, 1) },
      ],
      timings: [],
    },
    instances: [
      { id: "bb0201", appId: "bb02", ip: "10.4.0.4", lastHandshakeMs: NOW - 10 * 60_000 },
      { id: "aa0102", appId: "aa01", ip: "10.4.0.3", lastHandshakeMs: 0 },
      { id: "aa0101", appId: "aa01", ip: "10.4.0.2", lastHandshakeMs: NOW - 5_000 },
    ],
    certbot: {
      failures: 0,
      nextCheck: new Date(NOW + 3_600_000),
      lastRenewal: { at: new Date(NOW - 86_400_000), ok: true },
    },
    ...overrides,
  };
}
