import { gatewayConfigSchema } from "./schema.js";
import { defaultOf, fieldsOf, isOptional } from "./walk.js";

function defaultColumn(schema: Parameters<typeof defaultOf>[0]): string {
  const value = defaultOf(schema);
  if (value !== undefined) return `\`${JSON.stringify(value)}\``;
  return isOptional(schema) ? "none" : "required";
}

/** The README's configuration reference, generated from the schema (a test keeps README in step). */
export function referenceTable(): string {
  const rows = fieldsOf(gatewayConfigSchema).map(({ path, schema, meta }) => {
    const added = meta.added ? `${meta.doc} *(added beyond dstack)*` : meta.doc;
    // First in the cell, so a reader skimming the table sees it before the dstack meaning.
    const doc = meta.noEffect ? `**No effect:** ${meta.noEffect}. ${added}` : added;
    return `| \`${path}\` | ${meta.type} | ${defaultColumn(schema)} | ${doc} |`;
  });
  return ["| key | type | default | meaning |", "|---|---|---|---|", ...rows].join("\n");
}
