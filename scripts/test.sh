#!/usr/bin/env bash
# The test command (README, .ci/run). Installs and builds what is missing, then runs every quality gate and prints
# each stage's time:
#   1. Release build with -Werror; unit + integration tests (real SQLite files, gRPC servers on loopback, processes).
#   2. clang-format --dry-run -Werror over the tree.
#   3. A clang build with AddressSanitizer + UndefinedBehaviorSanitizer + coverage of everything but LibTorch
#      (build-asan), without the `fault` cases that it never runs (ISOFLOP_FAULT_TESTS off; the benchmarks stay, as
#      clang-tidy in stage 5 reads their compile commands); its unit + integration tests (the end-to-end sweep uses
#      the Release trainer).
#   4. Each fuzz target replays its corpus (fuzz/corpus/NAME) and runs: rpc for 1.5x ISOFLOP_FUZZ_SECONDS (default
#      40), the others for half of it.
#   5. clang-tidy over the sanitizer build's product sources, tests excepted (bugprone findings fail), skipping
#      files unchanged since they last passed (scripts/tidy.py): a file passes unchecked when the hash of its
#      preprocessed text (every header included, tree paths made relative), flags, .clang-tidy and the tools'
#      versions is the one committed in scripts/tidy-passed.json (so a clean clone, as in CI, checks only what
#      changed since it was recorded) or one in ~/.cache/isoflop/tidy. After changing product code, record it:
#      `python3 scripts/tidy.py --record build-asan`, and commit scripts/tidy-passed.json.
#   6. Line coverage of coordinator/, worker/, analysis/ from stage 3 (llvm-cov).
# Usage: scripts/test.sh [--quick] [extra ctest args...]
#   --quick   stage 1 only: the developer loop.
# Environment: ISOFLOP_BUILD_DIR (./build), ISOFLOP_ASAN_BUILD_DIR (./build-asan), ISOFLOP_FUZZ_SECONDS (40).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${ISOFLOP_BUILD_DIR:-$root/build}
asan=${ISOFLOP_ASAN_BUILD_DIR:-$root/build-asan}
fuzz_seconds=${ISOFLOP_FUZZ_SECONDS:-40}
quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
jobs=$(nproc)

t_all=$(date +%s)
stage_start=$t_all
stage() {
  local now; now=$(date +%s)
  printf '== stage %-34s %5ds\n' "$1" $(( now - stage_start )) >&2
  stage_start=$now
}
failed=()
gate() {  # gate NAME COMMAND...: runs a stage, records a failure and carries on so one run shows every problem
  local name=$1; shift
  if "$@"; then stage "$name"; else stage "$name (FAILED)"; failed+=("$name"); fi
}

ISOFLOP_WITH_QUALITY_TOOLS=$(( 1 - quick )) "$root/scripts/setup.sh"
stage "install + Release build"
gate "unit + integration tests" \
  ctest --test-dir "$build" -L 'unit|integration' --output-on-failure -j"$jobs" --timeout 900 "$@"
if ((quick)); then
  printf '== total %ds\n' $(( $(date +%s) - t_all )) >&2
  ((${#failed[@]} == 0)) || { echo "FAILED: ${failed[*]}" >&2; exit 1; }
  exit 0
fi

cd "$root"
mapfile -t sources < <(git ls-files '*.cc' '*.h')
gate "clang-format" clang-format --dry-run -Werror "${sources[@]}"

# The sanitizer build: clang, no LibTorch (its prebuilt libraries are not instrumented), coverage and fuzzers on;
# no fault cases, which only the Release stage runs. The benchmarks are built, not run: clang-tidy (stage 5) reads
# their compile commands.
if [ ! -f "$asan/build.ninja" ]; then
  mkdir -p "$asan"
  CC=clang CXX=clang++ cmake -G Ninja -S "$root" -B "$asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DISOFLOP_WITH_TORCH=OFF -DISOFLOP_SANITIZE=ON -DISOFLOP_COVERAGE=ON -DISOFLOP_FUZZ=ON \
    -DISOFLOP_FAULT_TESTS=OFF \
    -DISOFLOP_PREBUILT_TRAINER="$build/bin/isoflop-trainer" >"$asan/configure.log" 2>&1 ||
    { cat "$asan/configure.log" >&2; exit 1; }
fi
cmake --build "$asan"
stage "sanitizer build (ASan+UBSan, clang)"

rm -rf "$asan/profiles"; mkdir -p "$asan/profiles"
# %p: one profile per process, so the coordinator, worker and CLI children of the integration tests count too.
export LLVM_PROFILE_FILE="$asan/profiles/%p-%m.profraw"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The `fault` cases (real kill -9s, a full disk, a stopped worker; serialised, minutes each under ASan) run in the
# Release stage only: their coordinator, worker and store code paths also run here in the integration tests. (A
# build-asan configured before ISOFLOP_FAULT_TESTS existed still has them: -LE fault leaves them out.)
gate "sanitizer unit + integration tests" \
  ctest --test-dir "$asan" -L 'unit|integration' -LE fault --output-on-failure -j"$jobs" --timeout 900 "$@"

fuzz() {
  local ok=0 t name log
  for t in "$asan"/bin/*_fuzz; do
    name=$(basename "$t" _fuzz); log="$asan/fuzz-$name.log"; mkdir -p "$asan/fuzz-corpus/$name"
    # The RPC target runs ~1.5K inputs/s (protobuf parse + the service), the others ~15K/s: it gets 1.5x the
    # time (>= 10^5 inputs, issue 7) and they get half (still > 5x10^5 each).
    local secs=$(( fuzz_seconds / 2 ))
    [ "$name" = rpc ] && secs=$(( fuzz_seconds * 3 / 2 ))
    echo "-- ${name}_fuzz: replay fuzz/corpus/$name, then ${secs}s (log: $log)" >&2
    # New inputs go to the build tree; the committed corpus is only read.
    if ! "$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -close_fd_mask=3 "$asan/fuzz-corpus/$name" "$root/fuzz/corpus/$name" >"$log" 2>&1; then
      ok=1; tail -40 "$log" >&2
    fi
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|SUMMARY)' "$log" >&2 || true
  done
  return $ok
}
gate "fuzz (rpc $(( fuzz_seconds * 3 / 2 ))s, others $(( fuzz_seconds / 2 ))s)" fuzz

# Product code only (scripts/tidy.py's default): the tests run under ASan + UBSan above, and skipping their ~40 files
# saves ~4 of CI's minutes. It skips a file whose preprocessed text passed before (scripts/tidy-passed.json, then the
# local cache; most files are unchanged).
gate "clang-tidy" python3 "$root/scripts/tidy.py" --jobs "$jobs" "$asan"

coverage() {
  llvm-profdata merge -sparse "$asan"/profiles/*.profraw -o "$asan/coverage.profdata"
  local objects=() b status=0
  for b in "$asan"/bin/*; do
    [ -x "$b" ] && [ ! -L "$b" ] && [[ "$b" != *_fuzz ]] && objects+=(-object "$b")
  done
  # The per-file summary as JSON, not llvm-cov report's table: the table strips the file names' longest common
  # prefix (in CI every name is absolute, so "coordinator/x.cc" came out relative to an unknown directory and
  # nothing matched), and its own source-path filter misses the relative names that ccache's base_dir leaves in
  # the coverage mapping. Each name is resolved against the build dir and made relative to the tree here.
  llvm-cov export -summary-only -format=text "${objects[1]}" "${objects[@]:2}" \
    -instr-profile="$asan/coverage.profdata" > "$asan/coverage.json"
  python3 - "$asan" "$root" > "$asan/coverage.txt" <<'PY' || status=$?
import json, os, sys
asan, root = sys.argv[1], sys.argv[2]
n = m = 0
for f in json.load(open(os.path.join(asan, "coverage.json")))["data"][0]["files"]:
    rel = os.path.relpath(os.path.normpath(os.path.join(asan, f["filename"])), root)
    if rel.split(os.sep)[0] in ("coordinator", "worker", "analysis"):
        lines = f["summary"]["lines"]
        n += lines["count"]; m += lines["count"] - lines["covered"]
        print(rel, lines["count"], lines["count"] - lines["covered"])
p = 100 * (n - m) / n if n else 0
print(f"TOTAL coordinator/ worker/ analysis/: {n} lines, {m} missed, {p:.2f}% covered (gate 80%)")
sys.exit(0 if p >= 80 else 1)
PY
  tail -1 "$asan/coverage.txt" >&2
  return "$status"
}
gate "coverage (coordinator worker analysis)" coverage

printf '== total %ds\n' $(( $(date +%s) - t_all )) >&2
if ((${#failed[@]})); then echo "FAILED: ${failed[*]}" >&2; exit 1; fi
echo "all gates passed" >&2
