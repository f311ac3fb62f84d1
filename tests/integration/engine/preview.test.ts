import { describe, expect, it } from "vitest";
import { capturePlan, keyOf, type Plan, UNKNOWN_VALUE } from "../../../tools/plan/plan.js";

/** Every input path of a plan whose value is unknown at preview. */
function unknownPaths(plan: Plan): string[] {
  const out: string[] = [];
  const walk = (v: unknown, at: string) => {
    if (v === UNKNOWN_VALUE) out.push(at);
    else if (v !== null && typeof v === "object")
      for (const [k, x] of Object.entries(v)) walk(x, `${at}.${k}`);
  };
  for (const r of plan.resources) walk(r.inputs, keyOf(r));
  return out.sort();
}

describe("preview of a new stack: unknown exactly where the real engine cannot know", () => {
  it("us: what depends on the generated WireGuard key and ACME account, nothing else", async () => {
    const fresh = await capturePlan("us", { fresh: true });
    expect(unknownPaths(fresh)).toEqual([
      "cloudflare:index/dnsRecord:DnsRecord::us-dns-caa-issue.data.value",
      "cloudflare:index/dnsRecord:DnsRecord::us-dns-caa-issuewild.data.value",
      "command:remote:Command::us-gw1-config.triggers.0",
      "command:remote:Command::us-gw1-restart.triggers.0",
      // The ids of the bundle and config steps, which a first deploy creates.
      "command:remote:Command::us-gw1-restart.triggers.3",
      "command:remote:Command::us-gw1-restart.triggers.4",
    ]);
    // The config text itself is secret, so the plan shows it masked whether known or not.
    const config = fresh.resources.find((r) => r.name === "us-gw1-config");
    expect(config?.inputs.stdin).toBe("[secret]");
  });

  it("us, updating an existing stack: nothing is unknown", async () => {
    expect(unknownPaths(await capturePlan("us"))).toEqual([]);
  });
});
