/**
 * A run that fails part-way keeps what it did, as the real engine's snapshot does: a resource
 * replaced before the failure is the new one in the checkpoint, and its old copy is kept as
 * pending deletion (Pulumi's `delete: true`) and deleted by the next run, not taken for the
 * resource's state. Otherwise a rollback to the previous inputs would look like no change.
 */
import { describe, expect, it } from "vitest";
import { Deployment, makeUrn, type Registration } from "../../../tools/engine/deployment.js";
import type { Provider } from "../../../tools/engine/providers/types.js";
import type { Checkpoint } from "../../../tools/engine/state.js";

const STACK = "lab";
const ROOT = makeUrn(STACK, "p", "", "pulumi:pulumi:Stack", "p-lab");

const registration = (version: string): Registration => ({
  type: "command:remote:Command",
  name: "copy",
  custom: true,
  parent: ROOT,
  dependencies: [],
  inputs: { triggers: [version] },
  additionalSecretOutputs: [],
  replaceOnChanges: [],
  deleteBeforeReplace: false,
  aliases: [],
});

const calls: string[] = [];
let next = 0;
const provider: Provider = {
  check: async ({ news }) => ({ inputs: news, failures: [] }),
  // As the command provider: a change of triggers replaces.
  diff: async ({ olds, news }) =>
    JSON.stringify(olds.triggers) === JSON.stringify(news.triggers)
      ? { changes: "none", replaces: [], deleteBeforeReplace: false }
      : { changes: "some", replaces: ["triggers"], deleteBeforeReplace: false },
  create: async ({ news }) => {
    const id = `id-${++next}`;
    calls.push(`create ${id}`);
    return { id, outputs: news };
  },
  update: async () => ({ outputs: {} }),
  delete: async ({ id }) => {
    calls.push(`delete ${id}`);
  },
};

function deployment(checkpoint: Checkpoint, saved: Checkpoint[]) {
  return new Deployment({
    project: "p",
    stack: STACK,
    preview: false,
    pwd: "/",
    checkpoint,
    persist: (c) => saved.push(structuredClone(c)),
    providerFor: async () => provider,
    log: () => {},
  });
}

describe("a run that fails after a replacement", () => {
  it("keeps the new resource, deletes the old copy next time, and a rollback replaces again", async () => {
    const saved: Checkpoint[] = [];
    const first = deployment({ version: 1, stack: STACK, resources: [] }, saved);
    await first.register(registration("good"));
    await first.finish();
    const good = saved.at(-1) as Checkpoint;

    // The broken version replaces it; the run then fails before finish().
    const broken = deployment(good, saved);
    expect((await broken.register(registration("broken"))).id).toBe("id-2");
    const afterFailure = saved.at(-1) as Checkpoint;
    expect(afterFailure.resources.map((r) => [r.id, r.delete ?? false])).toEqual([
      ["id-2", false],
      ["id-1", true],
    ]);

    // Rolling back: the state is the broken one, so the good inputs replace it again, and the
    // old copy left pending is deleted with the replaced one.
    calls.length = 0;
    const rollback = deployment(afterFailure, saved);
    await rollback.register(registration("good"));
    await rollback.finish();
    expect(calls.sort()).toEqual(["create id-3", "delete id-1", "delete id-2"]);
    expect((saved.at(-1) as Checkpoint).resources.map((r) => r.id)).toEqual(["id-3"]);
  });
});
