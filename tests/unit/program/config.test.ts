import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { parseGatewayConfig } from "../../../gateway-runtime/config/index.js";
import { minimalConfig, withKey } from "../../helpers/config.js";

// Mocks must be in place before the program builds anything.
beforeAll(() => {
  pulumi.runtime.setMocks(
    {
      newResource: (args) => ({ id: `${args.name}-id`, state: args.inputs }),
      call: (args) => args.inputs,
    },
    "cvm-tls-gateway",
    "us",
    false,
  );
});

async function program() {
  const { gatewayProgram } = await import("../../../program.js");
  return gatewayProgram;
}

function useStackConfig(raw: unknown): void {
  pulumi.runtime.setAllConfig({ "gateway:config": JSON.stringify(raw) });
}

describe("the Pulumi program reads gateway:config through the runtime's schema", () => {
  it("accepts a valid stack config, with the generated WireGuard keys left out", async () => {
    const raw = withKey(
      withKey(minimalConfig(), "core.wg.private_key", undefined),
      "core.wg.public_key",
      undefined,
    );
    useStackConfig(withKey(raw, "core.wg.endpoint", undefined));
    const outputs = (await program())();
    expect(outputs).toEqual({ baseDomain: "app.test.example", rpcDomain: "gateway.test.example" });
  });

  it("fails a bad stack config with a RunError carrying the runtime's problem list", async () => {
    const bad = withKey(
      withKey(minimalConfig(), "core.proxy.listen_port", 8000),
      "core.admin.prot",
      1,
    );
    useStackConfig(bad);
    let thrown: unknown;
    try {
      (await program())();
    } catch (error) {
      thrown = error;
    }
    expect(pulumi.RunError.isInstance(thrown)).toBe(true);
    let runtimeMessage = "";
    try {
      parseGatewayConfig(bad, "gateway.toml");
    } catch (error) {
      runtimeMessage = (error as Error).message;
    }
    const problems = (message: string) => message.split("\n").slice(1);
    expect(problems((thrown as Error).message)).toEqual(problems(runtimeMessage));
    expect(problems(runtimeMessage)).toEqual([
      '  - core.admin.prot: unknown key (did you mean "port"?)',
      "  - core.proxy.listen_port: port 8000 is also used by port, got 8000",
    ]);
    expect((thrown as Error).message.split("\n")[0]).toBe(
      "invalid gateway config (stack us gateway:config), 2 problem(s):",
    );
  });

  it("fails when the stack has no gateway:config at all", async () => {
    pulumi.runtime.setAllConfig({});
    await expect(async () => (await program())()).rejects.toThrow(
      "Missing required configuration variable 'gateway:config'",
    );
  });
});
