// npm run lab [-- up|down|status]: a whole region on this machine, deployed by the Pulumi program.
import { rmSync } from "node:fs";
import { acmeDown, acmeUp } from "./acme.js";
import { cvmsDown, cvmsUp, labClientCa } from "./cvms.js";
import { applyDns, applyHost, labPlan } from "./deploy.js";
import { dnsDown, dnsUp } from "./dns.js";
import { LabError, sh, step } from "./exec.js";
import { HOST_MOUNT_POINTS, hostDown, hostUp } from "./host.js";
import { networkDown, networkUp } from "./network.js";
import { ensurePackages } from "./packages.js";
import { report } from "./report.js";
import { LAB_DIR } from "./state.js";

async function up(): Promise<void> {
  const started = Date.now();
  await ensurePackages();
  step("build: bundling the gateway runtime");
  await sh("npm", ["run", "--silent", "build"], { timeoutMs: 300_000 });
  await networkUp();
  const dns = await dnsUp();
  const acme = await acmeUp();
  const host = await hostUp();
  const clientCa = await labClientCa();
  step("deploy: evaluating the Pulumi program for the lab stack");
  const plan = await labPlan(dns, acme, clientCa.certPem);
  await applyDns(plan, dns);
  await applyHost(plan, host);
  const cvms = await cvmsUp(clientCa, acme);
  await report(acme, cvms);
  step(`up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

async function down(): Promise<void> {
  step("down: stopping CVMs, the gateway host, pebble and BIND; removing namespaces and .lab");
  await cvmsDown();
  await hostDown();
  await acmeDown();
  await dnsDown();
  await networkDown();
  rmSync(LAB_DIR, { recursive: true, force: true });
  for (const point of HOST_MOUNT_POINTS) rmSync(point, { recursive: true, force: true });
  step("down: done");
}

const command = process.argv[2] ?? "up";
const steps: Record<string, () => Promise<void>> = { up, down };
const run = steps[command];
if (!run) {
  process.stderr.write(`usage: npm run lab [-- up|down]\n`);
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
    if (command === "up" && process.env.LAB_KEEP_ON_FAILURE !== "1") {
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
