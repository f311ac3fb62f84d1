#!/usr/bin/env bash
# The one test entry (npm test): lint, type check, then every vitest suite.
# Ends with a line "N passed, N failed" counting the lint and type-check steps and every test.
set -uo pipefail
cd "$(dirname "$0")/.."

checks_passed=0
checks_failed=0
step() {
  local name=$1
  shift
  echo "== $name"
  if "$@"; then
    checks_passed=$((checks_passed + 1))
  else
    echo "!! $name failed"
    checks_failed=$((checks_failed + 1))
  fi
}

step "format and lint (biome check)" npx biome check .
step "type check (tsc --noEmit, real provider packages)" npx tsc --noEmit -p tsconfig.json

mkdir -p test-results
rm -f test-results/vitest.json test-results/adversarial.jsonl
echo "== vitest"
npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json "$@"
vitest_status=$?

node scripts/test-summary.mjs test-results/vitest.json "$checks_passed" "$checks_failed" "$vitest_status" \
  test-results/adversarial.jsonl
