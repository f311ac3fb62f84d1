#!/bin/sh
# Synthetic checks of one region stack from outside its hosts, after its `pulumi up` (the
# deploy workflow's waves): `gateway probe` resolves the region's names through DNS, completes
# TLS at every address, and routes to the stack's canary app (gateway:canaryAppId) in each URL
# form whose port is given: CANARY_PORT (<app>-<port>), CANARY_TLS_PORT (<app>-<port>s,
# passthrough), CANARY_H2_PORT (<app>-<port>g, h2). Exits non-zero naming the failed gate.
set -eu
stack=${1:?usage: scripts/probe-region.sh <stack>}
file="stacks/Pulumi.$stack.yaml"
# The base domain and canary app from the stack file: the same values the program deploys.
settings=$(node --input-type=module -e '
import { readFileSync } from "node:fs";
import { parse } from "yaml";
const c = parse(readFileSync(process.argv[1], "utf8")).config;
console.log(`${c["gateway:config"].core.proxy.base_domain}\n${c["gateway:canaryAppId"] ?? ""}`);
' "$file")
base=$(printf '%s\n' "$settings" | sed -n 1p)
canary=$(printf '%s\n' "$settings" | sed -n 2p)
set -- probe --region "$base" --health
if [ -n "$canary" ]; then
  set -- "$@" --canary "$canary"
  [ -z "${CANARY_PORT:-}" ] || set -- "$@" --canary-port "$CANARY_PORT"
  [ -z "${CANARY_TLS_PORT:-}" ] || set -- "$@" --canary-tls-port "$CANARY_TLS_PORT"
  [ -z "${CANARY_H2_PORT:-}" ] || set -- "$@" --canary-h2-port "$CANARY_H2_PORT"
else
  echo "::warning::$file sets no gateway:canaryAppId: the probe checks the certificate and health only"
fi
echo "gateway $*"
node dist/gateway.mjs "$@"
