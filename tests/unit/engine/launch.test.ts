import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { pwdMain, readProject } from "../../../tools/engine/launch.js";
import { tempDir } from "../../../testkit/tmp.js";

/** A project folder with Pulumi.yaml and a compiled entry in bin/. */
function project(main?: string) {
  const root = tempDir("engine-project-");
  mkdirSync(join(root, "bin"));
  writeFileSync(join(root, "bin", "index.js"), "");
  const lines = ["name: p", "runtime: nodejs", ...(main === undefined ? [] : [`main: ${main}`])];
  writeFileSync(join(root, "Pulumi.yaml"), `${lines.join("\n")}\n`);
  return root;
}

describe("the engine's getPwdMain rules", () => {
  it("main naming a file: its folder is the working directory, its name the entry", () => {
    const root = project("bin/index.js");
    expect(pwdMain(readProject(root))).toEqual({ pwd: join(root, "bin"), main: "index.js" });
  });

  it("main naming a folder: the folder is the working directory, the entry is '.'", () => {
    const root = project("bin/");
    expect(pwdMain(readProject(root))).toEqual({ pwd: join(root, "bin"), main: "." });
  });

  it("no main: the project folder, and package.json names the entry", () => {
    const root = project();
    expect(pwdMain(readProject(root))).toEqual({ pwd: root, main: "." });
  });

  it("refuses an absolute main, one outside the project, and one that does not exist", () => {
    expect(() => pwdMain(readProject(project("/etc/passwd")))).toThrow(
      "project 'main' must be a relative path: /etc/passwd",
    );
    expect(() => pwdMain(readProject(project("../x.js")))).toThrow(
      "project 'main' must be a subfolder of the project: ../x.js",
    );
    expect(() => pwdMain(readProject(project("bin/missing.js")))).toThrow(
      "project 'main' bin/missing.js does not exist (run the build first)",
    );
  });

  it("this repository's Pulumi.yaml: the program runs from bin/", () => {
    const root = new URL("../../../", import.meta.url).pathname.replace(/\/$/, "");
    expect(pwdMain(readProject(root))).toEqual({ pwd: join(root, "bin"), main: "index.js" });
  });
});
