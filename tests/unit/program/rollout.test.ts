/**
 * Host by host in a region (#19 point 2): in eu (three hosts) each host's drain waits for the
 * previous host's gate, every step that changes the gateway waits for its host's drain, and
 * the gate runs `gateway probe` after the restart. A one-host region (us) gets no rollout
 * steps. Plans come from the recording engine running the compiled program.
 */
import { describe, expect, it } from "vitest";
import { HOST_PATHS } from "../../../host/layout.js";
import { drainScript, gateScript } from "../../../host/rollout.js";
import { capturePlan, type Plan, stackConfig } from "../../../tools/plan/plan.js";

const CMD = "command:remote:Command::";
const find = (plan: Plan, name: string) => {
  const r = plan.resources.find((x) => x.name === name);
  if (r === undefined) throw new Error(`no resource ${name}`);
  return r;
};
const CANARY = "325147d43fbb7562fd3013f55378a76ef1f0ca61";

describe("eu: three hosts updated one at a time", () => {
  it("chains drain → update → restart → gate, host after host; etcd steps stay outside", async () => {
    const plan = await capturePlan("eu");
    // Commands a drain waits for (the others are the keys and certificates its triggers hash).
    const commands = (name: string) =>
      find(plan, name).dependsOn.filter((d) => d.startsWith("command:"));
    expect(commands("eu-gw1-drain")).toEqual([`${CMD}eu-gw1-setup`]);
    expect(commands("eu-gw2-drain")).toEqual([`${CMD}eu-gw1-gate`, `${CMD}eu-gw2-setup`]);
    expect(commands("eu-gw3-drain")).toEqual([`${CMD}eu-gw2-gate`, `${CMD}eu-gw3-setup`]);
    for (const host of ["gw1", "gw2", "gw3"]) {
      for (const step of ["config", "unit", "restart"]) {
        expect(find(plan, `eu-${host}-${step}`).dependsOn).toContain(`${CMD}eu-${host}-drain`);
      }
      expect(find(plan, `eu-${host}-bundle`).dependsOn).toContain(`${CMD}eu-${host}-drain`);
      expect(find(plan, `eu-${host}-gate`).dependsOn).toContain(`${CMD}eu-${host}-restart`);
      for (const step of ["etcd-tls", "etcd-unit", "etcd-restart"]) {
        expect(find(plan, `eu-${host}-${step}`).dependsOn.join()).not.toMatch(/-drain|-gate/);
      }
      // The drain runs again when the restart's values change (it runs before the steps whose
      // ids the restart also follows); the gate after every restart, and when the drain's
      // script changes, so a drained host always gets its gate.
      const restart = find(plan, `eu-${host}-restart`).inputs.triggers as unknown[];
      expect(restart.slice(-2)).toEqual([
        expect.stringMatching(new RegExp(`^eu-${host}-bundle[0-9a-f]{8}$`)),
        expect.stringMatching(new RegExp(`^eu-${host}-config[0-9a-f]{8}$`)),
      ]);
      expect(find(plan, `eu-${host}-drain`).inputs.triggers).toEqual(restart.slice(0, -2));
      expect(find(plan, `eu-${host}-gate`).inputs.triggers).toEqual([
        ...restart.slice(0, -2),
        expect.stringMatching(/^[0-9a-f]{64}$/),
        expect.stringMatching(new RegExp(`^eu-${host}-restart[0-9a-f]{8}$`)),
      ]);
    }
  });

  it("drains with SetNodeStatus down and lets the host back in after `gateway probe`", async () => {
    const plan = await capturePlan("eu");
    const spec = { node: "gw2", admin: true, acmeCa: false };
    expect(find(plan, "eu-gw2-drain").inputs.create).toBe(drainScript(spec));
    const gate = String(find(plan, "eu-gw2-gate").inputs.create);
    expect(gate).toBe(
      gateScript(spec, {
        tlsPort: 443,
        tlsAddress: "0.0.0.0",
        rpcPort: 8000,
        wireguardPort: 51820,
        sshPort: 22,
        writablePaths: [],
      }),
    );
    expect(drainScript(spec)).toContain(
      `node ${HOST_PATHS.bundle} admin SetNodeStatus '{"name":"gw2","status":"down"}'`,
    );
    expect(gate).toContain(
      `node ${HOST_PATHS.bundle} probe --config /etc/gateway/gateway.toml --ready-file /run/gateway/ready --ready-pid "$main" --connect 127.0.0.1:443 --instances-at-least "$before" --timeout 120`,
    );
    expect(gate).toContain(`admin SetNodeStatus '{"name":"gw2","status":"up"}'`);
    // The host goes back in only after the probe passed.
    expect(gate.indexOf("probe")).toBeLessThan(gate.indexOf('"status":"up"'));
    expect(gate).toContain("exit 1");
  });

  it("gateway:canaryAppId adds the canary route to every gate, once the host had registrations", async () => {
    const { config, secretKeys } = stackConfig("eu");
    const plan = await capturePlan("eu", {
      config: { config: { ...config, "gateway:canaryAppId": CANARY }, secretKeys },
    });
    for (const host of ["gw1", "gw2", "gw3"]) {
      const script = String(find(plan, `eu-${host}-gate`).inputs.create);
      // A first deploy has no CVM of the canary app to route to yet.
      expect(script).toContain(`if [ "$before" -gt 0 ]; then\n  canary="--canary ${CANARY}"`);
      expect(script).toContain("$canary --timeout 120");
    }
    expect(String(find(plan, "eu-gw1-gate").inputs.create)).toContain(
      "gw1 had no registrations before its update (a first deploy): no canary gate",
    );
  });
});

describe("a one-host region keeps its steps", () => {
  it("us: no drain, no gate, the restart depends on what it did before", async () => {
    const plan = await capturePlan("us");
    expect(plan.resources.filter((r) => /-(drain|gate)$/.test(r.name))).toEqual([]);
    expect(find(plan, "us-gw1-restart").dependsOn.join()).not.toMatch(/drain/);
  });
});

describe("the scripts", () => {
  it("a first deploy has nothing to drain; without the admin API nothing is drained", () => {
    const script = drainScript({ node: "gw1", admin: true, acmeCa: false });
    expect(script).toContain(`if [ -f ${HOST_PATHS.bundle} ] && systemctl is-active --quiet`);
    expect(script).toContain("nothing to drain");
    expect(drainScript({ node: "gw1", admin: false, acmeCa: false })).not.toContain(
      "admin SetNodeStatus",
    );
  });

  it("the gate trusts the shipped ACME CA", () => {
    const layout = {
      tlsPort: 8443,
      tlsAddress: "10.0.0.5",
      rpcPort: 8000,
      wireguardPort: 51820,
      sshPort: 22,
      writablePaths: [],
    };
    const gate = gateScript({ node: "gw1", admin: false, acmeCa: true }, layout);
    expect(gate).toContain(`--connect 10.0.0.5:8443 --ca ${HOST_PATHS.acmeCa} --timeout 120`);
    expect(gate).not.toContain("--instances-at-least");
  });
});
