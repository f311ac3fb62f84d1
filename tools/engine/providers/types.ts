import type { Props } from "../values.js";

/** A provider as the engine drives it (Pulumi's ResourceProvider service, reduced to what steps use). */
export interface Provider {
  /** Validates and normalises inputs; failures name the property. */
  check(req: { urn: string; olds: Props | undefined; news: Props }): Promise<CheckResult>;
  /** Compares the last outputs (and inputs) with the new checked inputs. */
  diff(req: {
    urn: string;
    id: string;
    olds: Props;
    oldInputs: Props;
    news: Props;
  }): Promise<DiffResult>;
  create(req: {
    urn: string;
    news: Props;
    preview: boolean;
  }): Promise<{ id: string; outputs: Props }>;
  update(req: {
    urn: string;
    id: string;
    olds: Props;
    oldInputs: Props;
    news: Props;
    preview: boolean;
  }): Promise<{ outputs: Props }>;
  delete(req: { urn: string; id: string; olds: Props; oldInputs: Props }): Promise<void>;
  invoke?(token: string, args: Props): Promise<Props>;
  close?(): Promise<void>;
}

export interface CheckResult {
  inputs: Props;
  failures: { property: string; reason: string }[];
}

export interface DiffResult {
  /** "unknown": the provider did not say; the engine compares old and new inputs itself. */
  changes: "some" | "none" | "unknown";
  replaces: string[];
  deleteBeforeReplace: boolean;
}

/** A provider error that names the resource; the run stops with it. */
export class ProviderError extends Error {
  override name = "ProviderError";
}
