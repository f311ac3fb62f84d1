import {
  type ConfigFormat,
  loadConfigFile,
  serializeConfig,
  toRedactedObject,
} from "../config/index.js";

export const checkConfigHelp = `Usage: gateway check-config FILE [--format json|toml|yaml]

Validates FILE (.toml, .json, .yaml) against the gateway config schema.
Prints the normalized config (defaults filled in, secrets redacted) and exits 0,
or prints every problem, each with its key path, and exits 2.`;

export function checkConfigCommand(file: string, format: ConfigFormat): number {
  const config = loadConfigFile(file);
  process.stdout.write(serializeConfig(toRedactedObject(config), format));
  return 0;
}
