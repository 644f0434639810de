#!/usr/bin/env bash
# The demo (README): installs and builds what is missing, prepares the default corpus (King James Bible from
# Debian's bible-kjv, SentencePiece BPE), starts a coordinator and a CPU worker on loopback with an SQLite file under
# a fresh state directory, submits configs/demo-cpu.textproto, waits, prints the fitted law and the compute-optimal
# model for a budget 10x the sweep's largest (none from an unidentified law: the verdict says why), then stops
# the processes.
#   scripts/demo.sh [CONFIG]     (default configs/demo-cpu.textproto)
# Environment: ISOFLOP_STATE (state directory; default state/demo-<time>), ISOFLOP_CPU_SLOTS (default: cores).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${ISOFLOP_BUILD_DIR:-$root/build}
config=${1:-$root/configs/demo-cpu.textproto}
state=${ISOFLOP_STATE:-$root/state/demo-$(date +%Y%m%d-%H%M%S)}
data_root=${ISOFLOP_DATA_DIR:-$root/.cache/data}
slots=${ISOFLOP_CPU_SLOTS:-$(nproc)}
bin=$build/bin

"$root/scripts/setup.sh" isoflop isoflop-coordinator isoflop-worker isoflop-trainer isoflop-data
mkdir -p "$state/logs" "$data_root"
t0=$(date +%s)

# The dataset name and vocabulary come from the config (grep, not a proto parser: the CLI validates it later).
dataset=$(grep -o 'dataset: *"[^"]*"' "$config" | head -n1 | sed 's/.*"\(.*\)"/\1/')
vocab=$(grep -o 'vocab_size: *[0-9]*' "$config" | head -n1 | grep -o '[0-9]*$')
if [ ! -f "$data_root/$dataset/val.bin" ]; then
  echo "== preparing dataset $dataset (vocab $vocab) under $data_root" >&2
  "$bin/isoflop" data prepare --name "$dataset" --data-dir "$data_root" --vocab-size "$vocab"
fi

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
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$state/coordinator.log" >&2; exit 1; }
  sleep 0.1
done
# The coordinator wrote its tokens (0600) beside the database before it listened.
export ISOFLOP_TOKEN_FILE=$state/token
"$bin/isoflop-worker" --coordinator "$ISOFLOP_ADDRESS" --token-file "$state/worker_token" --data-dir "$data_root" --trainer "$bin/isoflop-trainer" \
  --cpu-slots "$slots" --logs-dir "$state/logs" >"$state/worker.log" 2>&1 &
pids+=($!)
echo "== coordinator on $ISOFLOP_ADDRESS, worker with $slots CPU slots; state in $state" >&2

# stdout: the sweep id, then the fit (kept for the report below).
"$bin/isoflop" sweep submit "$config" --wait --yes | tee "$state/submit.out"
sweep=$(head -n1 "$state/submit.out")

echo "== sweep took $(( $(date +%s) - t0 )) s; database $state/isoflop.db:" >&2
sqlite3 "$state/isoflop.db" "select 'metrics rows: ' || count(*) from metrics; pragma integrity_check;" >&2

# The report: the law's verdict (ok, weak or unidentified, with the reasons),
# the backtest and the diagnostic figures (docs/architecture.md).
"$bin/isoflop" report "$sweep" --out "$state/report" >/dev/null 2>"$state/report.log" || { cat "$state/report.log" >&2; exit 1; }
echo "== report in $state/report (report.md, figures *.svg)"
grep '^report: backtest' "$state/report.log" | sed 's/^report: /== /' || true
# The N_opt exponent under N total / non-embedding and C exact / 6ND.
grep '^Sensitivity of the N_opt exponent' "$state/report/report.md" | sed 's/^/== /' || true
verdict=$(python3 -c 'import json, sys; v = json.load(open(sys.argv[1])).get("verdict"); print(v["level"] + ": " + "; ".join(v["reasons"]) if v else "")' "$state/report/report.json")
if [ -n "$verdict" ]; then
  echo "== verdict: $verdict"
fi
