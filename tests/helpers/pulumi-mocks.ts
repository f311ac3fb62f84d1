import type * as pulumi from "@pulumi/pulumi";
import { standIn } from "../../tools/plan/stand-ins.js";

type MockResult = { id: string; state: Record<string, unknown> };

/** Deterministic fakes for what real runs generate (`standIn`), and zone ids. */
export function planMocks(stack: string): pulumi.runtime.Mocks {
  return {
    async newResource(args): Promise<MockResult> {
      const made = standIn(stack, args.type, args.name, args.inputs);
      if (made) return { id: made.id, state: made.outputs };
      return { id: `${args.name}-id`, state: args.inputs };
    },
    call(args) {
      if (args.token === "cloudflare:index/getZone:getZone") {
        const filter = args.inputs.filter as { name?: string } | undefined;
        return { id: `zone-id-of-${filter?.name}`, name: filter?.name };
      }
      throw new Error(`no mock for the invoke ${args.token}`);
    },
  };
}
