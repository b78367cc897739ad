#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs and starts what the tests need
# (scripts/test-deps.sh), then runs every test of the workspace against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh
# The property tests (adapters/tests/hostile_archives.rs, runbooks/tests/mutated_yaml.rs) run
# a bounded number of generated cases; raise it for a longer hunt.
export PROPTEST_CASES="${PROPTEST_CASES:-1000}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
  # nextest does not run doc tests.
  cargo test --workspace --doc --quiet
else
  cargo test --workspace --no-fail-fast
fi
