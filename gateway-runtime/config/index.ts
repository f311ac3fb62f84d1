export { formatDuration, parseDuration } from "./duration.js";
export { type ConfigErrorCode, type ConfigProblem, ConfigError } from "./errors.js";
export {
  checkHostFiles,
  checkHostPrograms,
  FILE_KEYS,
  type FileRead,
  filesReadAtStart,
  HAPROXY_BINARY,
  type ProgramRun,
  programsRunAtStart,
  type ReadFileKey,
  requireHostFiles,
} from "./host-files.js";
export { type FieldMeta, isDnsName } from "./fields.js";
export {
  type ConfigFormat,
  formatFromPath,
  loadConfigFile,
  loadConfigFileNoting,
  parseConfigText,
  parseGatewayConfig,
  parseOperatorConfig,
  readText,
  serializeConfig,
  syntax as parseSyntax,
  toConfigObject,
  toRedactedObject,
} from "./load.js";
export {
  type NoEffectKey,
  noEffectKeys,
  noEffectKeysSet,
  noEffectMessage,
  withoutNoEffectKeys,
} from "./no-effect.js";
export { type Cidr, cidrContains, cidrWithin, formatIpv4, parseCidr, parseIpv4 } from "./net.js";
export { referenceTable } from "./reference.js";
export { type ConfigRisk, configRisks } from "./risks.js";
export { gatewayConfigSchema, operatorConfigSchema } from "./schema.js";
export type {
  CertbotConfig,
  EnabledCertbot,
  GatewayConfig,
  GatewayConfigInput,
  OperatorConfig,
  OperatorConfigInput,
} from "./types.js";
export { isSecret, Secret } from "./secret.js";
