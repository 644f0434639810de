#!/usr/bin/env bash
# Trunk and branches against independent cosine runs (issue 23, docs/architecture.md §2.1): runs the same grid
# twice on one coordinator and one CPU worker, once as the config says (schedule COSINE) and once with
# schedule: WSD_BRANCHED, and prints per run the compute (FLOPs trained, and the independent grid's), the wall time
# and the fitted law, side by side.
#   bench/branched.sh [CONFIG]     (default configs/demo-cpu.textproto; its schedule line is replaced)
# Environment: ISOFLOP_BUILD_DIR (default build), ISOFLOP_DATA_DIR (default .cache/data), ISOFLOP_CPU_SLOTS
# (default: cores), ISOFLOP_STATE (default state/branched-<time>).
# Per shape a branched sweep trains 0.2 + 0.8 x (largest budget's steps / sum of its budgets' steps) of the
# independent runs' tokens (cool-down fraction 0.2): budgets spread over a decade save less than close ones.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${ISOFLOP_BUILD_DIR:-$root/build}
config=${1:-$root/configs/demo-cpu.textproto}
state=${ISOFLOP_STATE:-$root/state/branched-$(date +%Y%m%d-%H%M%S)}
data_root=${ISOFLOP_DATA_DIR:-$root/.cache/data}
slots=${ISOFLOP_CPU_SLOTS:-$(nproc)}
bin=$build/bin
mkdir -p "$state/logs"

dataset=$(grep -o 'dataset: *"[^"]*"' "$config" | head -n1 | sed 's/.*"\(.*\)"/\1/')
vocab=$(grep -o 'vocab_size: *[0-9]*' "$config" | head -n1 | grep -o '[0-9]*$')
if [ ! -f "$data_root/$dataset/val.bin" ]; then
  "$bin/isoflop" data prepare --name "$dataset" --data-dir "$data_root" --vocab-size "$vocab"
fi
# The two configs: the schedule line replaced (or added to the training block), distinct names.
strip() { sed -e '/^ *schedule:/d' "$config"; }
strip | sed -e 's/^name: *"\([^"]*\)"/name: "\1-cosine"/' -e 's/^training {/training {\n  schedule: COSINE/' >"$state/cosine.textproto"
strip | sed -e 's/^name: *"\([^"]*\)"/name: "\1-branched"/' -e 's/^training {/training {\n  schedule: WSD_BRANCHED/' >"$state/branched.textproto"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export ISOFLOP_ADDRESS=127.0.0.1:$port
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
"$bin/isoflop-coordinator" --listen "$ISOFLOP_ADDRESS" --db "$state/isoflop.db" >"$state/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  grep -q 'listening on' "$state/coordinator.log" && break
  sleep 0.1
done
export ISOFLOP_TOKEN_FILE=$state/token
# Branches need the checkpoint directory (a trunk's kept checkpoints reach them there).
"$bin/isoflop-worker" --coordinator "$ISOFLOP_ADDRESS" --token-file "$state/worker_token" --data-dir "$data_root" \
  --trainer "$bin/isoflop-trainer" --cpu-slots "$slots" --logs-dir "$state/logs" \
  --checkpoint-dir "$state/checkpoints" >"$state/worker.log" 2>&1 &
pids+=($!)

for kind in cosine branched; do
  t0=$(date +%s.%N)
  "$bin/isoflop" sweep submit "$state/$kind.textproto" --wait >"$state/$kind.out"
  t1=$(date +%s.%N)
  sweep=$(head -n1 "$state/$kind.out")
  python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$t0" "$t1" >"$state/$kind.seconds"
  "$bin/isoflop" sweep status "$sweep" --format json >"$state/$kind.json"
done

python3 "$root/bench/branched_compare.py" "$state"
