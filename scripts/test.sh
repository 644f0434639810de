#!/usr/bin/env bash
# The test command (README, .ci/run): installs and builds what is missing, then runs the unit and integration tests
# (real SQLite files, real gRPC servers on loopback, real processes). Prints each stage's time.
#   scripts/test.sh [extra ctest args...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${ISOFLOP_BUILD_DIR:-$root/build}
stage_start=$(date +%s)
stage() {
  local now; now=$(date +%s)
  printf '== stage %-28s %5ds\n' "$1" $(( now - stage_start )) >&2
  stage_start=$now
}
t_all=$(date +%s)
"$root/scripts/setup.sh"
stage "install + build"
ctest --test-dir "$build" -L 'unit|integration' --output-on-failure -j2 --timeout 900 "$@"
stage "unit + integration tests"
printf '== total %ds\n' $(( $(date +%s) - t_all )) >&2
