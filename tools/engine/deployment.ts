/**
 * One run of the engine over one stack: each resource the program registers becomes a step
 * (create, same, update, replace) carried out by its provider, the checkpoint is written after
 * every step that changed something, and what the program no longer registers is deleted at
 * the end, dependents first. Preview runs the same decisions without touching anything: a
 * resource to create or update gets its checked inputs as outputs, so the program sees
 * provider-computed outputs as unknown, as with the real engine's providers that do not
 * preview (the dynamic provider host and the command provider among them).
 */
import type { Provider } from "./providers/types.js";
import type { Checkpoint, ResourceState } from "./state.js";
import { decide, deletionOrder, type Operation } from "./steps.js";
import { hashAssets, markSecrets, type Props } from "./values.js";

export const ROOT_STACK_TYPE = "pulumi:pulumi:Stack";

/** A registration as the SDK sent it: what offline plans show. */
export interface Registration {
  type: string;
  name: string;
  custom: boolean;
  parent: string;
  dependencies: string[];
  /** Inputs as serialized by the SDK (secrets still marked, assets as sent). */
  inputs: Props;
  additionalSecretOutputs: string[];
  replaceOnChanges: string[];
  deleteBeforeReplace: boolean;
  /**
   * Earlier URNs of this resource (`aliases`), as the SDK computes them for an engine without
   * alias specs: its own and those it inherits from its parents' aliases.
   */
  aliases: string[];
}

export interface Step {
  urn: string;
  op: Operation;
  /** Changed top-level properties (update, replace). */
  keys: string[];
  replaceKeys: string[];
}

export interface DeploymentOptions {
  project: string;
  stack: string;
  preview: boolean;
  /** The program's working directory: relative file assets resolve from it. */
  pwd: string;
  checkpoint: Checkpoint;
  /** Called after every change to the checkpoint (never in preview). */
  persist: (checkpoint: Checkpoint) => void;
  providerFor: (type: string) => Promise<Provider>;
  log: (line: string) => void;
  /**
   * State for a resource the checkpoint lacks, as if an earlier run had made it: offline plans
   * preview an update of a stack whose generated keys and account exist.
   */
  prior?: (urn: string, reg: Registration) => ResourceState | undefined;
}

export class DeploymentError extends Error {
  override name = "DeploymentError";
}

/** `urn:pulumi:<stack>::<project>::<parent types$>type::<name>`; the root stack's type is left out of its children's. */
export function makeUrn(
  stack: string,
  project: string,
  parent: string,
  type: string,
  name: string,
) {
  const parentType = parent === "" ? "" : (parent.split("::")[2] ?? "");
  const qualified =
    parentType === "" || parentType === ROOT_STACK_TYPE ? type : `${parentType}$${type}`;
  return `urn:pulumi:${stack}::${project}::${qualified}::${name}`;
}

const shortName = (urn: string) => urn.split("::").slice(-1)[0] ?? urn;

export class Deployment {
  readonly registrations = new Map<string, Registration>();
  readonly steps: Step[] = [];
  readonly outputs = new Map<string, Props>();
  rootUrn = "";
  /** Current state: starts as the checkpoint, changes with each step. */
  private readonly live: Map<string, ResourceState>;
  private readonly old: Map<string, ResourceState>;
  /** Old resources of replacements, deleted once the new ones exist. */
  private readonly replaced: ResourceState[] = [];
  /** Old URNs a registration took over through an alias: not deleted at the end. */
  private readonly adopted = new Set<string>();

  constructor(private readonly options: DeploymentOptions) {
    const [pending, current] = partition(options.checkpoint.resources, (r) => r.delete === true);
    this.old = new Map(current.map((r) => [r.urn, r]));
    this.live = new Map(this.old);
    this.replaced.push(...pending);
  }

  private save(): void {
    if (!this.options.preview) this.options.persist(this.state());
  }

  private record(step: Step): void {
    this.steps.push(step);
    if (step.op === "same") return;
    const detail =
      step.op === "replace"
        ? ` (${step.replaceKeys.join(", ")})`
        : step.op === "update"
          ? ` (${step.keys.join(", ")})`
          : "";
    const verb = this.options.preview ? `${step.op} (preview)` : step.op;
    this.options.log(`${verb.padEnd(18)} ${shortName(step.urn)}${detail}`);
  }

  /** Carries out one registration; returns what the program gets back. */
  async register(reg: Registration): Promise<{ urn: string; id: string; outputs: Props }> {
    const { stack, project, preview, pwd } = this.options;
    const urn = makeUrn(stack, project, reg.parent, reg.type, reg.name);
    if (this.registrations.has(urn)) throw new DeploymentError(`duplicate resource URN ${urn}`);
    this.registrations.set(urn, reg);
    const old = this.old.get(urn) ?? this.aliased(reg) ?? this.options.prior?.(urn, reg);
    const base = {
      urn,
      type: reg.type,
      name: reg.name,
      custom: reg.custom,
      parent: reg.parent,
      dependencies: reg.dependencies,
      additionalSecretOutputs: reg.additionalSecretOutputs,
    };
    if (!reg.custom) {
      this.live.set(urn, { ...base, id: "", inputs: {}, outputs: old?.outputs ?? {} });
      this.record({ urn, op: old ? "same" : "create", keys: [], replaceKeys: [] });
      this.save();
      return { urn, id: "", outputs: {} };
    }

    const provider = await this.options.providerFor(reg.type);
    const inputs = hashAssets(reg.inputs, pwd) as Props;
    const checked = await provider.check({ urn, olds: old?.inputs, news: inputs });
    if (checked.failures.length > 0) {
      const list = checked.failures.map((f) => `  - ${f.property}: ${f.reason}`).join("\n");
      throw new DeploymentError(`${urn}: the provider refused the inputs:\n${list}`);
    }
    const news = markSecrets(checked.inputs, inputs, []);
    const diff = old
      ? await provider.diff({ urn, id: old.id, olds: old.outputs, oldInputs: old.inputs, news })
      : undefined;
    const decision = decide({
      oldInputs: old?.inputs,
      news,
      diff,
      replaceOnChanges: reg.replaceOnChanges,
      deleteBeforeReplace: reg.deleteBeforeReplace,
    });
    this.record({ urn, ...decision });

    let id = old?.id ?? "";
    let outputs: Props;
    if (decision.op === "same" && old) {
      outputs = old.outputs;
    } else if (preview) {
      // Providers that do not preview: the checked inputs stand for the outputs, and every
      // output the provider would compute stays unknown to the program.
      outputs = news;
    } else if (decision.op === "update" && old) {
      const done = await provider.update({
        urn,
        id,
        olds: old.outputs,
        oldInputs: old.inputs,
        news,
        preview,
      });
      outputs = done.outputs;
    } else {
      if (decision.op === "replace" && old) {
        if (decision.deleteBeforeReplace) {
          await provider.delete({ urn, id: old.id, olds: old.outputs, oldInputs: old.inputs });
          this.live.delete(urn);
          this.save();
        } else this.replaced.push(old);
      }
      const done = await provider.create({ urn, news, preview });
      id = done.id;
      outputs = done.outputs;
    }
    const marked = markSecrets(outputs, news, reg.additionalSecretOutputs);
    this.live.set(urn, { ...base, id, inputs: news, outputs: marked });
    this.save();
    return { urn, id, outputs: marked };
  }

  /**
   * The state of an alias of `reg`, moved to the new URN as the engine does: the resource is
   * the same one (same, update or replace from its old state), not a create and a delete.
   */
  private aliased(reg: Registration): ResourceState | undefined {
    const from = reg.aliases.find((a) => this.old.has(a) && !this.registrations.has(a));
    if (from === undefined) return undefined;
    this.adopted.add(from);
    this.live.delete(from);
    return this.old.get(from);
  }

  registerOutputs(urn: string, outputs: Props): void {
    this.outputs.set(urn, outputs);
    const state = this.live.get(urn);
    if (state) {
      this.live.set(urn, { ...state, outputs });
      this.save();
    }
  }

  /** After the program: deletes replaced resources and everything the program did not register. */
  async finish(): Promise<void> {
    const gone = [...this.old.values()].filter(
      (r) => !this.registrations.has(r.urn) && !this.adopted.has(r.urn),
    );
    await this.deleteAll([...this.replaced, ...gone]);
  }

  /** `destroy`: every resource of the checkpoint, dependents first. */
  async destroyAll(): Promise<void> {
    await this.deleteAll([...this.old.values(), ...this.replaced]);
  }

  private async deleteAll(resources: ResourceState[]): Promise<void> {
    for (const r of deletionOrder(resources)) {
      const op = this.replaced.includes(r) ? "delete-replaced" : "delete";
      this.record({ urn: r.urn, op, keys: [], replaceKeys: [] });
      if (this.options.preview) continue;
      if (r.custom) {
        const provider = await this.options.providerFor(r.type);
        await provider.delete({ urn: r.urn, id: r.id, olds: r.outputs, oldInputs: r.inputs });
      }
      const index = this.replaced.indexOf(r);
      if (index >= 0) this.replaced.splice(index, 1);
      else this.live.delete(r.urn);
      this.save();
    }
  }

  /** The state after the run (what was persisted last). */
  state(): Checkpoint {
    return {
      version: 1,
      stack: this.options.stack,
      resources: [
        ...this.live.values(),
        ...this.replaced.map((r): ResourceState => ({ ...r, delete: true })),
      ],
    };
  }
}

function partition<T>(items: readonly T[], test: (item: T) => boolean): [T[], T[]] {
  return [items.filter(test), items.filter((item) => !test(item))];
}
