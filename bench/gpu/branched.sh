#!/usr/bin/env bash
# Issue 23 on a GPU host: one grid run twice through scripts/gpu_sweep.sh, once with schedule COSINE (independent
# runs) and once with WSD_BRANCHED (one trunk per shape, a cool-down branch per cell), then compared side by side
# by bench/branched_compare.py (compute, wall time, both laws, best loss per budget).
#   OUT=... bench/gpu/branched.sh CONFIG [gpu_sweep.sh options...]
# The cosine run gets 55% of --deadline-s, the branched run what is left (default 500 s in all). Outputs go to
# $OUT/cosine/ and $OUT/branched/ (each an all.tgz, summary.txt and steps.log), the comparison to $OUT/branched.md.
# The trainer build and the data are made once (gpu_sweep.sh caches both in /tmp).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
config=$1; shift
deadline=500 args=()
while [ $# -gt 0 ]; do
  case $1 in
    --deadline-s) deadline=$2; shift ;;
    *) args+=("$1") ;;
  esac
  shift
done
OUT=${OUT:-/tmp/out}
work=$(mktemp -d /tmp/branched-XXXX)
strip() { sed -e '/^ *schedule:/d' "$config"; }
strip | sed -e 's/^name: *"\([^"]*\)"/name: "\1-cosine"/' -e 's/^training {/training {\n  schedule: COSINE/' >"$work/cosine.textproto"
strip | sed -e 's/^name: *"\([^"]*\)"/name: "\1-branched"/' -e 's/^training {/training {\n  schedule: WSD_BRANCHED/' >"$work/branched.textproto"
t_start=$(date +%s)
for kind in cosine branched; do
  if [ "$kind" = cosine ]; then left=$(( deadline * 55 / 100 ))
  else left=$(( deadline - ($(date +%s) - t_start) )); fi
  mkdir -p "$OUT/$kind"
  rc=0
  OUT=$OUT/$kind ISOFLOP_STATE=$work/state-$kind "$root/scripts/gpu_sweep.sh" --deadline-s "$left" "${args[@]}" \
    "$work/$kind.textproto" || rc=$?
  echo "== $kind: gpu_sweep.sh exit $rc" >&2
  cp "$work/state-$kind/report/status.json" "$work/$kind.json"
  sed -n 's/.*sweep: \([0-9]*\) s.*/\1/p' "$OUT/$kind/summary.txt" | head -n1 >"$work/$kind.seconds"
done
python3 "$root/bench/branched_compare.py" "$work" | tee "$OUT/branched.md"
