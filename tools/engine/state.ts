/**
 * The checkpoint: what the last run left in place, one entry per resource, in registration
 * order. Kept as a 0600 JSON file written atomically (temp file, fsync, rename), so a crash
 * mid-write leaves the previous checkpoint. Like Pulumi's own state it holds secret values;
 * unlike it, in plain text: it is the lab's, on the machine that runs the lab.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from "node:fs";
import type { Props } from "./values.js";

export interface ResourceState {
  urn: string;
  type: string;
  name: string;
  custom: boolean;
  /** The provider's id; "" for components. */
  id: string;
  parent: string;
  dependencies: string[];
  /** Inputs after the provider's Check: what the next Diff compares against. */
  inputs: Props;
  outputs: Props;
  additionalSecretOutputs: string[];
  /**
   * The old copy of a replaced resource, not deleted yet (a run that failed before its deletes):
   * Pulumi's `delete: true`. The next run deletes it; it is never the resource's state.
   */
  delete?: true;
}

export interface Checkpoint {
  version: 1;
  stack: string;
  resources: ResourceState[];
}

export const emptyCheckpoint = (stack: string): Checkpoint => ({
  version: 1,
  stack,
  resources: [],
});

export function readCheckpoint(file: string, stack: string): Checkpoint {
  if (!existsSync(file)) return emptyCheckpoint(stack);
  const parsed = JSON.parse(readFileSync(file, "utf8")) as Checkpoint;
  if (parsed.version !== 1 || parsed.stack !== stack) {
    throw new Error(`${file} is not a version 1 checkpoint of stack ${stack}`);
  }
  return parsed;
}

export function writeCheckpoint(file: string, checkpoint: Checkpoint): void {
  const temp = `${file}.${process.pid}.tmp`;
  const fd = openSync(temp, "w", 0o600);
  try {
    writeSync(fd, `${JSON.stringify(checkpoint, null, 1)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
}
