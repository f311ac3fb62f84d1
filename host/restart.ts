/** The deploy step that restarts the gateway and waits for the new generation to serve. */
import { HOST_PATHS, type HostLayout, probeAddress, SERVICE_NAME } from "./layout.js";

/**
 * Restarts the gateway (a hand-over: see `unitFile`), then waits (bounded) for the new
 * generation: its ready file names the unit's new main pid once every part serves, and it
 * accepts TCP connections on the TLS port. A connection alone proves nothing any more: the
 * socket unit and the draining workers of the old generation answer it too. On failure prints
 * the unit's status and last log lines.
 */
export function restartScript(
  layout: HostLayout,
  readyTimeoutSeconds = 60,
  readyFile: string = HOST_PATHS.ready,
): string {
  const host = probeAddress(layout);
  const probe =
    'const s=require("node:net").connect({host:process.argv[1],port:Number(process.argv[2]),timeout:2000});' +
    's.on("connect",()=>{s.destroy();process.exit(0)});s.on("error",()=>process.exit(1));' +
    's.on("timeout",()=>process.exit(1))';
  return `#!/bin/sh
set -eu
rm -f ${readyFile}
systemctl restart ${SERVICE_NAME}
echo "waiting up to ${readyTimeoutSeconds} s for the new gateway generation to serve on ${host} port ${layout.tlsPort}"
deadline=$(( $(date +%s) + ${readyTimeoutSeconds} ))
while :; do
  main=$(systemctl show -p MainPID --value ${SERVICE_NAME} 2>/dev/null || echo 0)
  if systemctl is-active --quiet ${SERVICE_NAME} && [ "$(cat ${readyFile} 2>/dev/null)" = "$main" ] && node -e '${probe}' ${host} ${layout.tlsPort}; then
    echo "gateway is up"
    exit 0
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then break; fi
  sleep 1
done
echo "the new gateway generation did not serve on ${host} port ${layout.tlsPort} within ${readyTimeoutSeconds} s" >&2
systemctl status ${SERVICE_NAME} --no-pager >&2 || true
echo "last log lines:" >&2
journalctl -u ${SERVICE_NAME} -n 50 --no-pager >&2 || true
exit 1
`;
}
