/**
 * The suite's one summary line: each part adds how many hostile cases it tried and whether the
 * gateway crashed or kept descriptors or memory afterwards (health.ts), to a file the final step
 * of `npm test` (scripts/test-summary.mjs) adds up. A crash or a leak also fails the part's
 * test: the line says what was tried, the tests decide.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";

export const TALLY_FILE = new URL("../../test-results/adversarial.jsonl", import.meta.url).pathname;

export interface PartTally {
  readonly part: string;
  readonly cases: number;
  readonly crashed: boolean;
  readonly leaked: boolean;
}

export function recordPart(tally: PartTally): void {
  mkdirSync(dirname(TALLY_FILE), { recursive: true });
  appendFileSync(TALLY_FILE, `${JSON.stringify(tally)}\n`);
}
