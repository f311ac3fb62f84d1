#!/usr/bin/env bash
# The Node.js the gateway hosts run, for everything this repository runs on this machine
# (.ci/run, npm test, npm run lab, npm run bench): the official build of the version pinned in
# .node-version (the one place it is written), fetched once from the npm registry (package
# node-linux-<arch>; npm checks its integrity against the registry) and reused afterwards.
#   scripts/node.sh               fetch when missing, print the directory holding `node`
#   scripts/node.sh CMD [ARG...]  run CMD with that directory first on PATH
# Cache: $CVM_GATEWAY_NODE_CACHE, else /var/cache/cvm-gateway-node as root, else
# ~/.cache/cvm-gateway-node. Needs some node and npm already installed, only to fetch.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=$(tr -d '[:space:]v' <"$root/.node-version")
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "node.sh: no official Node.js build for $(uname -m)" >&2; exit 1 ;;
esac
if [ -n "${CVM_GATEWAY_NODE_CACHE:-}" ]; then
  cache=$CVM_GATEWAY_NODE_CACHE
elif [ "$(id -u)" -eq 0 ]; then
  cache=/var/cache/cvm-gateway-node
else
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/cvm-gateway-node
fi
home=$cache/$version-$arch
bin=$home/bin

fetch() {
  # Under a lock: the lab and the tests may both find the cache empty at the same time.
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  if [ "$("$bin/node" --version 2>/dev/null)" = "v$version" ]; then
    exec 9>&- # another run fetched it meanwhile
    return 0
  fi
  echo "node.sh: fetching Node.js $version (node-linux-$arch) from the npm registry into $home" >&2
  local tmp
  tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$version" >/dev/null)
  tar -xzf "$tmp/node-linux-$arch-$version.tgz" -C "$tmp" package/bin/node package/LICENSE
  if [ "$("$tmp/package/bin/node" --version)" != "v$version" ]; then
    echo "node.sh: node-linux-$arch@$version does not run here or is not $version" >&2
    rm -rf "$tmp"
    exit 1
  fi
  rm -rf "$home"
  mv "$tmp/package" "$home"
  rm -rf "$tmp"
  exec 9>&-
}

[ "$("$bin/node" --version 2>/dev/null)" = "v$version" ] || fetch
if [ $# -eq 0 ]; then
  echo "$bin"
  exit 0
fi
export PATH="$bin:$PATH"
exec "$@"
