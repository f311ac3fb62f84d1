/**
 * The certificate manager a config asks for: a host alone keeps its lock and ledger in its work
 * directory; a host of a region (`core.cluster.enabled`) shares the lock, the ledger and the
 * certificate itself with the region's other hosts through etcd (cluster/).
 */
import { CertificateManager } from "./manager.js";
import type { CertificateManagerOptions } from "./types.js";

export async function openCertificateManager(
  opts: CertificateManagerOptions,
): Promise<CertificateManager> {
  if (!opts.config.core.cluster.enabled) return new CertificateManager(opts);
  const { regionOptions } = await import("./cluster/index.js");
  const region = await regionOptions(opts.config, opts.log.child({ part: "certs" }));
  try {
    return new CertificateManager({ ...region, ...opts });
  } catch (e) {
    await region.dispose();
    throw e;
  }
}
