// npm run lab [-- up|down|status]: a whole region on this machine, deployed by the Pulumi program.
import { existsSync, rmSync } from "node:fs";
import { acmeDown, acmeUp, type LabAcme } from "./acme.js";
import { cvmsDown, cvmsUp, labClientCa } from "./cvms.js";
import { forgetHostSteps, labDeploy, labUp } from "./deploy.js";
import { dnsDown, dnsUp, type LabDns } from "./dns.js";
import { alive, LabError, sh, step } from "./exec.js";
import { HOST_MOUNT_POINTS, hostsDown, hostsUp, runningHosts } from "./host.js";
import { networkDown, networkUp } from "./network.js";
import { ensurePackages } from "./packages.js";
import { report } from "./report.js";
import { LAB_DIR, labEngine, labPath, readJson, regionGateways, regionSize } from "./state.js";

/** `--<name> <value>` options of this run (repeatable). */
const options = (name: string) =>
  process.argv.slice(3).flatMap((arg, i, all) => (all[i - 1] === `--${name}` ? [arg] : []));
/** `--set <ns>:<key>[.path]=<value>` (repeatable): a config change for this run only. */
const sets = options("set");

/** The lab was up when this run began: a failed up leaves it, as a failed `pulumi up` does. */
let wasUp = false;

async function up(): Promise<void> {
  const started = Date.now();
  wasUp = existsSync(labPath("lab.json"));
  await ensurePackages();
  step("build: bundling the gateway runtime");
  await sh("npm", ["run", "--silent", "build"], { timeoutMs: 300_000 });
  const gateways = regionGateways(regionSize(options("hosts").at(-1)));
  const engine = labEngine(options("engine").at(-1));
  // Always set, as the lab stack names one too; before this run's own --set, which may still
  // override it.
  const engineSet = [`gateway:config.core.proxy.engine=${engine}`];
  await networkUp(gateways);
  const dns = await dnsUp();
  const acme = await acmeUp();
  const hosts = await hostsUp(gateways);
  const clientCa = await labClientCa();
  forgetHostSteps(hosts.filter((h) => h.fresh).map((h) => h.name));
  await labUp({ dns, acme, hosts, clientCaPem: clientCa.certPem, sets: [...engineSet, ...sets] });
  const cvms = await cvmsUp(clientCa, acme);
  await report(acme, cvms, gateways);
  step(`up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/** `pulumi destroy` of the lab stack, while the host, DNS and pebble it deployed to still run. */
async function destroy(): Promise<void> {
  const dns = readJson<LabDns>(labPath("dns.json"));
  const acme = readJson<LabAcme>(labPath("acme.json"));
  const hosts = runningHosts(regionGateways(regionSize(undefined)));
  if (!existsSync(labPath("checkpoint.json"))) return;
  if (!dns || !acme || !hosts || ![dns.pid, acme.pid].every(alive)) {
    step(
      "down: the lab's services are not all running: skipping pulumi destroy, removing everything",
    );
    return;
  }
  step("down: pulumi destroy of the lab stack (recording engine)");
  await labDeploy({ dns, acme, hosts, clientCaPem: (await labClientCa()).certPem }, "destroy");
}

async function down(): Promise<void> {
  await destroy();
  step("down: stopping CVMs, the gateway host, pebble and BIND; removing namespaces and .lab");
  await cvmsDown();
  await hostsDown();
  await acmeDown();
  await dnsDown();
  await networkDown();
  rmSync(LAB_DIR, { recursive: true, force: true });
  for (const point of HOST_MOUNT_POINTS) rmSync(point, { recursive: true, force: true });
  step("down: done");
}

const command = process.argv[2] ?? "up";
const steps: Record<string, () => Promise<void>> = { up, down, destroy };
const run = steps[command];
if (!run) {
  process.stderr.write(
    `usage: npm run lab [-- up [--hosts 1|3] [--engine node|haproxy] [--set <ns>:<key>[.path]=<value>]... | destroy | down]\n`,
  );
  process.exit(64);
}
if (process.getuid?.() !== 0) {
  process.stderr.write("lab: must run as root (network namespaces, BIND on port 53)\n");
  process.exit(1);
}
run().then(
  () => process.exit(0),
  async (error: unknown) => {
    process.stderr.write(
      `lab: ${command} failed: ${error instanceof LabError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    if (command === "up" && wasUp) {
      process.stderr.write(
        "lab: the lab was up before this run and is left as the failed up left it (npm run lab -- up again, or down)\n",
      );
    } else if (command === "up" && process.env.LAB_KEEP_ON_FAILURE !== "1") {
      process.stderr.write(
        "lab: cleaning up what was started (LAB_KEEP_ON_FAILURE=1 keeps it for debugging)\n",
      );
      await down().catch((e: unknown) =>
        process.stderr.write(`lab: cleanup failed too: ${String(e)}\n`),
      );
    }
    process.exit(1);
  },
);
