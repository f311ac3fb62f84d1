/**
 * Host-by-host rollout in a region of several hosts (README "Rolling out a region"): before a
 * host's update the drain step takes it out of the region, and after its restart the gate step
 * runs `gateway probe` on the host and lets it back in. The next host's steps wait for this
 * host's gate (components/gateway-region.ts), so a failed gate stops the rollout there, with
 * the hosts after it untouched and this one still drained.
 */
import { HOST_PATHS, type HostLayout, probeAddress, SERVICE_NAME, shellQuote } from "./layout.js";

export interface RolloutSpec {
  /** The host's node name in the region (`core.cluster.node_name`). */
  readonly node: string;
  /**
   * The admin API is enabled: the drain (`SetNodeStatus`) and the registrations gate
   * (`Status`) go through it. Without it the host is updated without draining.
   */
  readonly admin: boolean;
  /** An app whose route the gate requests (`gateway:canaryAppId`). @default none: no canary gate */
  readonly canaryAppId?: string | undefined;
  /** The ACME CA shipped to the host (`gateway:acmeCaPem`): the served chain is checked against it too. */
  readonly acmeCa: boolean;
  /** Bound on each gate, seconds. @default 120 */
  readonly gateTimeoutSeconds?: number | undefined;
}

/** Where the drain step leaves the number of registrations before the update, for the gate. */
const BEFORE = "/run/gateway-rollout/instances";

const gateway = (args: string) => `node ${HOST_PATHS.bundle} ${args}`;

function setStatus(node: string, status: "up" | "down"): string {
  return gateway(`admin SetNodeStatus ${shellQuote(JSON.stringify({ name: node, status }))}`);
}

/**
 * Takes the host out of the region before its update: no new registrations, out of the other
 * hosts' server lists, and `health.<base>` answers 503, which a health-checked front door
 * (components/front-door.ts) follows. The DNS records are Pulumi's and stay. On a first deploy
 * there is no gateway to drain yet.
 */
export function drainScript(spec: RolloutSpec): string {
  const who = spec.node;
  if (!spec.admin) {
    return `#!/bin/sh
echo "rollout: ${who} is updated without draining: core.admin is disabled, so SetNodeStatus cannot be called"
`;
  }
  return `#!/bin/sh
set -eu
install -d -m 0700 ${BEFORE.slice(0, BEFORE.lastIndexOf("/"))}
if [ -f ${HOST_PATHS.bundle} ] && systemctl is-active --quiet ${SERVICE_NAME}; then
  # A gateway that does not answer (a broken build crash-looping, say) has nothing to drain:
  # the update that replaces it goes on, and its gates judge the new one.
  if status=$(${gateway("admin Status")}); then
    printf '%s' "$status" | node -e 'let s="";process.stdin.on("data",(d)=>{s+=d}).on("end",()=>console.log(JSON.parse(s).hosts.length))' > ${BEFORE}.new
    mv -f ${BEFORE}.new ${BEFORE}
    ${setStatus(who, "down")} >/dev/null
    echo "rollout: ${who} drained (no new registrations, health answers 503) with $(cat ${BEFORE}) registrations before its update"
  else
    echo 0 > ${BEFORE}
    echo "rollout: the gateway on ${who} does not answer its admin API (above): updated without draining"
  fi
else
  echo 0 > ${BEFORE}
  echo "rollout: no gateway runs on ${who} yet (first deploy): nothing to drain"
fi
`;
}

/**
 * After the restart: `gateway probe` on the host (the new generation's ready file, the
 * region's certificate served on the TLS port, the registrations back, the canary app routed
 * when the host had registrations before),
 * then the host back in the region. A failed gate exits non-zero naming it and leaves the host
 * drained, which fails this step and stops the rollout.
 */
export function gateScript(spec: RolloutSpec, layout: HostLayout): string {
  const who = spec.node;
  const flags = [
    `--config ${HOST_PATHS.config}`,
    `--ready-file ${HOST_PATHS.ready} --ready-pid "$main"`,
    `--connect ${probeAddress(layout)}:${layout.tlsPort}`,
    ...(spec.acmeCa ? [`--ca ${HOST_PATHS.acmeCa}`] : []),
    ...(spec.admin ? [`--instances-at-least "$before"`] : []),
    ...(spec.canaryAppId === undefined ? [] : ["$canary"]),
    `--timeout ${spec.gateTimeoutSeconds ?? 120}`,
  ];
  // The canary app can only be routed once a CVM of it registered: not on a first deploy.
  const canary =
    spec.canaryAppId === undefined
      ? ""
      : `canary=""
if [ "$before" -gt 0 ]; then
  canary="--canary ${spec.canaryAppId}"
else
  echo "rollout: ${who} had no registrations before its update (a first deploy): no canary gate"
fi
`;
  return `#!/bin/sh
set -eu
main=$(systemctl show -p MainPID --value ${SERVICE_NAME})
before=$(cat ${BEFORE} 2>/dev/null || echo 0)
${canary}echo "rollout: health gates of ${who}"
if ! ${gateway(`probe ${flags.join(" ")}`)}; then
  echo "rollout stopped at ${who}: a health gate failed (above); ${who} stays drained, the hosts after it keep their version" >&2
  exit 1
fi
${spec.admin ? `${setStatus(who, "up")} >/dev/null\n` : ""}echo "rollout: ${who} passed its gates and is back in the region"
`;
}
