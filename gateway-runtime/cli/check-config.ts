import { accessSync, constants, statSync } from "node:fs";
import {
  checkHostPrograms,
  type ConfigFormat,
  configRisks,
  filesReadAtStart,
  loadConfigFileNoting,
  noEffectMessage,
  requireHostFiles,
  serializeConfig,
  toRedactedObject,
} from "../config/index.js";

export const checkConfigHelp = `Usage: gateway check-config FILE [--format json|toml|yaml] [--on-host | --shipped PATH ...]

Validates FILE (.toml, .json, .yaml) against the gateway config schema.
Prints the normalized config (defaults filled in, secrets redacted) and exits 0,
or prints every problem, each with its key path, and exits 2.
Keys the gateway accepts but does not act on are noted on stderr; they do not fail the check.

Files the config makes the gateway read at start (the attestation CA in mode "ca",
acme_ca_file, the certificate files while certbot is disabled) are checked too with:
  --on-host          each must exist here: run it on the host the config is for; so must
                     the programs it runs (/usr/sbin/haproxy with core.proxy.engine "haproxy")
  --shipped PATH     each must be one of these paths (repeat it): the files that will
                     be on the host, checked anywhere, without reading them
Without either, only the schema is checked (the config may be meant for another machine).`;

/** Where the files the config reads are looked for: nowhere, this machine, or a given list. */
export type HostFilesCheck =
  | { kind: "none" }
  | { kind: "host" }
  | { kind: "shipped"; paths: readonly string[] };

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export function checkConfigCommand(
  file: string,
  format: ConfigFormat,
  files: HostFilesCheck = { kind: "none" },
): number {
  const { config, noEffect } = loadConfigFileNoting(file);
  if (files.kind !== "none") {
    // On a host the files present are the shipped ones: the same pure check as at preview.
    const present =
      files.kind === "shipped"
        ? files.paths
        : filesReadAtStart(config)
            .map((read) => read.path)
            .filter(isFile);
    // Programs come from packages, not from what the program ships: checked on a host only.
    const programs = files.kind === "host" ? checkHostPrograms(config, isExecutable) : [];
    requireHostFiles(config, present, file, programs);
  }
  // Notes go to stderr: stdout stays the config alone, for whatever parses it.
  for (const key of noEffect) process.stderr.write(`note: ${noEffectMessage(key)}\n`);
  for (const risk of configRisks(config)) {
    process.stderr.write(`warning: ${risk.path} ${risk.message}\n`);
  }
  process.stdout.write(serializeConfig(toRedactedObject(config), format));
  return 0;
}
