/**
 * Starts a Pulumi Node.js program as Pulumi's Node.js language host does: the program directory
 * and entry come from `Pulumi.yaml` by the engine's rules (`main` naming a file makes its folder
 * the working directory; a folder becomes the working directory itself; none leaves the project
 * folder, with `.` as entry so `package.json` names the file), and `@pulumi/pulumi/cmd/run`,
 * resolved from that directory, gets the monitor and engine addresses, project, stack, `--pwd`
 * and `--dry-run`, with the stack's config and its secret keys in the environment.
 */
import { spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { dirname, basename, isAbsolute, join, relative, resolve } from "node:path";
import { createInterface } from "node:readline";
import { parse as parseYaml } from "yaml";
import { sdkEntry } from "./sdk.js";

export interface Project {
  name: string;
  /** The folder holding Pulumi.yaml. */
  root: string;
  /** `main` as written in Pulumi.yaml, if any. */
  main?: string;
  stackConfigDir: string;
}

export function readProject(root: string): Project {
  const doc = parseYaml(readFileSync(join(root, "Pulumi.yaml"), "utf8")) as {
    name?: unknown;
    main?: unknown;
    stackConfigDir?: unknown;
    runtime?: unknown;
  };
  if (typeof doc.name !== "string") throw new Error(`${root}/Pulumi.yaml has no name`);
  const runtime =
    typeof doc.runtime === "string" ? doc.runtime : (doc.runtime as { name?: string })?.name;
  if (runtime !== "nodejs")
    throw new Error(`${root}/Pulumi.yaml: runtime ${runtime} is not nodejs`);
  return {
    name: doc.name,
    root,
    ...(typeof doc.main === "string" ? { main: doc.main } : {}),
    stackConfigDir: join(root, typeof doc.stackConfigDir === "string" ? doc.stackConfigDir : "."),
  };
}

/** The engine's `getPwdMain`: the program's working directory and the entry it is given. */
export function pwdMain(project: Project): { pwd: string; main: string } {
  if (project.main === undefined || project.main === "") return { pwd: project.root, main: "." };
  if (isAbsolute(project.main))
    throw new Error(`project 'main' must be a relative path: ${project.main}`);
  const full = resolve(project.root, project.main);
  if (relative(project.root, full).startsWith("..")) {
    throw new Error(`project 'main' must be a subfolder of the project: ${project.main}`);
  }
  let isDir: boolean;
  try {
    isDir = statSync(full).isDirectory();
  } catch {
    throw new Error(`project 'main' ${project.main} does not exist (run the build first)`);
  }
  return isDir ? { pwd: full, main: "." } : { pwd: dirname(full), main: basename(full) };
}

export interface LaunchOptions {
  project: Project;
  stack: string;
  monitor: string;
  engine: string;
  preview: boolean;
  /** Config as `PULUMI_CONFIG` carries it: `<namespace>:<key>` → string (objects as JSON). */
  config: Record<string, string>;
  secretKeys: readonly string[];
  parallel?: number;
  /** Bound on the program's run; it is killed after it. @default 600_000 */
  timeoutMs?: number;
  /** Each line the program prints. */
  output: (line: string) => void;
}

/** Runs the program to its end; resolves with its exit code. */
export function launchProgram(options: LaunchOptions): Promise<number> {
  const { pwd, main } = pwdMain(options.project);
  const args = [
    sdkEntry(pwd, "cmd/run"),
    `--monitor=${options.monitor}`,
    `--engine=${options.engine}`,
    "--organization=organization",
    `--project=${options.project.name}`,
    `--stack=${options.stack}`,
    `--pwd=${pwd}`,
    `--root-directory=${options.project.root}`,
    `--parallel=${options.parallel ?? 16}`,
    ...(options.preview ? ["--dry-run"] : []),
    main,
  ];
  const child = spawn(process.execPath, args, {
    cwd: pwd,
    env: {
      ...process.env,
      // The language host passes keys as `<namespace>:config:<key>` (the SDK accepts both forms).
      PULUMI_CONFIG: JSON.stringify(
        Object.fromEntries(
          Object.entries(options.config).map(([k, v]) => [k.replace(/^([^:]+):/, "$1:config:"), v]),
        ),
      ),
      PULUMI_CONFIG_SECRET_KEYS: JSON.stringify(options.secretKeys),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  createInterface({ input: child.stdout }).on("line", options.output);
  createInterface({ input: child.stderr }).on("line", options.output);
  const limit = options.timeoutMs ?? 600_000;
  const timer = setTimeout(() => {
    options.output(`the program did not finish within ${limit / 1000} s: stopping it`);
    child.kill("SIGKILL");
  }, limit);
  return new Promise((resolveExit, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolveExit(code ?? (signal ? 128 : 1));
    });
  });
}
