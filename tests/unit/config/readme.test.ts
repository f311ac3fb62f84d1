import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { END, START, withReference } from "../../../scripts/readme-config.js";

describe("README configuration reference", () => {
  const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");

  it("matches the schema (run `npm run readme` after changing it)", () => {
    expect(readme).toBe(withReference(readme));
  });

  it("lists every seed key and the secrets as required-or-none, never with a value", () => {
    const table = readme.slice(readme.indexOf(START), readme.indexOf(END));
    expect(table).toContain('| `core.proxy.timeouts.total` | duration | `"5h"` |');
    expect(table).toContain("| `core.wg.private_key` | secret | required |");
    expect(table).toContain("| `core.certbot.cf_api_token` | secret | none |");
    expect(table.split("\n").filter((l) => l.startsWith("| `")).length).toBe(108);
  });
});
