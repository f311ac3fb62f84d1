import { sh, step } from "./exec.js";

/** Debian packages the lab needs; installed only when missing. */
export const LAB_PACKAGES = [
  "gnupg",
  "bind9",
  "bind9-dnsutils",
  "pebble",
  "openssh-server",
  "openssh-client",
  "wireguard-go",
  // the region's etcd members (--hosts 3); the hosts' setup finds it installed
  "etcd-server",
  "wireguard-tools",
  "iproute2",
  "nftables",
  "curl",
  "openssl",
  "util-linux",
  "ca-certificates",
] as const;

async function installed(pkg: string): Promise<boolean> {
  // dpkg-query's own format syntax, not a template string.
  const format = "-f=$" + "{Status}";
  const out = await sh("dpkg-query", ["-W", format, pkg]).catch(() => "");
  return out.includes("install ok installed");
}

export async function ensurePackages(): Promise<void> {
  const missing: string[] = [];
  for (const pkg of LAB_PACKAGES) if (!(await installed(pkg))) missing.push(pkg);
  if (missing.length === 0) {
    step("Debian packages: all present");
    return;
  }
  step(`Debian packages: installing ${missing.join(", ")}`);
  await sh("apt-get", ["update", "-q"], { timeoutMs: 300_000 });
  await sh("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...missing], {
    timeoutMs: 600_000,
  });
}
