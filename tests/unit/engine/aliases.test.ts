/**
 * A resource whose URN changed (a component's new type token) keeps its state through the
 * aliases the SDK sends, as with the real engine: the step is `same` (or an update), never a
 * create of the new URN and a delete of the old one, and a child that inherits the alias too.
 */
import { describe, expect, it } from "vitest";
import { Deployment, makeUrn, type Registration } from "../../../tools/engine/deployment.js";
import type { Provider } from "../../../tools/engine/providers/types.js";
import type { ResourceState } from "../../../tools/engine/state.js";

const STACK = "us";
const PROJECT = "p";
const ROOT = makeUrn(STACK, PROJECT, "", "pulumi:pulumi:Stack", "p-us");
const OLD = makeUrn(STACK, PROJECT, ROOT, "gateway:index:GatewayRegion", "us");
const NEW = makeUrn(STACK, PROJECT, ROOT, "pkg:index:GatewayRegion", "us");
const OLD_CHILD = makeUrn(STACK, PROJECT, OLD, "test:index:Thing", "us-a");
const NEW_CHILD = makeUrn(STACK, PROJECT, NEW, "test:index:Thing", "us-a");

const state = (urn: string, parent: string, custom: boolean): ResourceState => ({
  urn,
  type: urn.split("::")[2]?.split("$").pop() ?? "",
  name: urn.split("::")[3] ?? "",
  custom,
  id: custom ? "id-1" : "",
  parent,
  dependencies: [],
  inputs: custom ? { a: 1 } : {},
  outputs: custom ? { a: 1 } : {},
  additionalSecretOutputs: [],
});

const reg = (type: string, name: string, parent: string, aliases: string[], custom = false) =>
  ({
    type,
    name,
    custom,
    parent,
    dependencies: [],
    inputs: custom ? { a: 1 } : {},
    additionalSecretOutputs: [],
    replaceOnChanges: [],
    deleteBeforeReplace: false,
    aliases,
  }) satisfies Registration;

const calls: string[] = [];
const provider: Provider = {
  check: async ({ news }) => ({ inputs: news, failures: [] }),
  diff: async () => ({ changes: "none", replaces: [], deleteBeforeReplace: false }),
  create: async ({ urn }) => {
    calls.push(`create ${urn}`);
    return { id: "id-2", outputs: {} };
  },
  update: async () => ({ outputs: {} }),
  delete: async ({ urn }) => {
    calls.push(`delete ${urn}`);
  },
};

describe("aliases", () => {
  it("a new type token with an alias: the old state is taken over, nothing created or deleted", async () => {
    const deployment = new Deployment({
      project: PROJECT,
      stack: STACK,
      preview: false,
      pwd: "/",
      checkpoint: {
        version: 1,
        stack: STACK,
        resources: [state(OLD, ROOT, false), state(OLD_CHILD, OLD, true)],
      },
      persist: () => {},
      providerFor: async () => provider,
      log: () => {},
    });
    await deployment.register(reg("pkg:index:GatewayRegion", "us", ROOT, [OLD]));
    await deployment.register(reg("test:index:Thing", "us-a", NEW, [OLD_CHILD], true));
    await deployment.finish();
    expect(deployment.steps.map((s) => [s.op, s.urn])).toEqual([
      ["same", NEW],
      ["same", NEW_CHILD],
    ]);
    expect(calls).toEqual([]);
    expect(deployment.state().resources.map((r) => r.urn)).toEqual([NEW, NEW_CHILD]);
  });
});
