#!/usr/bin/env bash
# One sweep on a GPU host with no package registry, from the repo root with the bundle of scripts/bundle.sh present
# (README "Running on a GPU host with no package registry"): builds isoflop-trainer against the host's LibTorch and
# the bundle's abseil, prepares the data, starts isoflop-coordinator and isoflop-worker from the bundle, logs GPU
# utilisation, submits CONFIG and waits, writes `isoflop report`, backs up the database, stops everything and packs
# it all into $OUT/all.tgz (next to it: summary.txt and steps.log).
#   scripts/gpu_sweep.sh [options] CONFIG
#     --synth NAME:FLAGS  before the sweep, `isoflop-data synth --out DATA/NAME FLAGS` unless DATA/NAME exists
#                         (repeatable), e.g. --synth 'synth-v10k:--vocab-size 10000 --train-tokens 1e8 --seed 1'
#     --cpu               test on a machine without a GPU: trainer from ./build, worker --cpu-slots
#                         ($ISOFLOP_CPU_SLOTS, default 2), no nvidia-smi
#     --gpus N            GPUs the worker uses, one trial each (default 1)
#     --data-root DIR     datasets, DIR/NAME/{train,val}.bin (default /tmp/isoflop-data); the bundle's kjv-bpe10000
#                         is linked in
#     --deadline-s S      wall-clock budget of the whole run (default 540, under a 600 s device call): the wait for
#                         the sweep stops in time to cancel it and still report and pack
#     --bundle DIR        default .bundle
# Environment: OUT (default /tmp/out), ISOFLOP_STATE (default /tmp/isoflop-sweep-TIME), ISOFLOP_TRAINER_BUILD_DIR
#   (default /tmp/b, as bench/gpu/trainer_vs_pytorch.sh), ISOFLOP_TORCH_PYTHON (default /opt/torch/.venv/bin/python),
#   ISOFLOP_WORKER_ARGS (more worker flags), ISOFLOP_GPU_LOG_S (nvidia-smi period, default 5).
# Exit status: that of `isoflop sweep submit --wait` (124: the deadline cut the sweep), or 1 when a step before fails.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit 2; }

cpu=0 gpus=1 deadline_s=540 bundle=$root/.bundle data=/tmp/isoflop-data config='' synths=()
while [ $# -gt 0 ]; do
  case $1 in
    --cpu) cpu=1 ;;
    --gpus) gpus=$2; shift ;;
    --synth) synths+=("$2"); shift ;;
    --data-root) data=$2; shift ;;
    --deadline-s) deadline_s=$2; shift ;;
    --bundle) bundle=$2; shift ;;
    -h|--help) usage ;;
    -*) echo "gpu_sweep.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$config" ] || usage; config=$1 ;;
  esac
  shift
done
[ -n "$config" ] || usage
[ -f "$config" ] || { echo "gpu_sweep.sh: no config $config" >&2; exit 1; }
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
bundle=$(cd "$bundle" && pwd)
OUT=${OUT:-/tmp/out}
state=${ISOFLOP_STATE:-/tmp/isoflop-sweep-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" "$state/logs" "$data"
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }
log() { echo "== $(date +%T) [$(elapsed) s] $*" | tee -a "$OUT/steps.log" >&2; }
die() { log "FAILED: $*"; exit 1; }

# --- on exit, however we got there: report, back up, stop, pack --------------------------------------------------
coordinator_pid='' worker_pid='' smi_pid='' sweep_id='' reported=0 sweep_rc=''
stop() {  # pid, grace in s: SIGTERM, then SIGKILL after the grace
  local pid=$1 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < $2 * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
report() {
  [ -n "$sweep_id" ] && [ "$reported" = 0 ] || return 0
  reported=1
  mkdir -p "$state/report"
  if "$bin/isoflop" report --help >/dev/null 2>&1; then
    log "isoflop report $sweep_id --out $state/report"
    local rc=0
    ISOFLOP_DATA_DIR=$data timeout 60 "$bin/isoflop" report "$sweep_id" --out "$state/report" 2>&1 |
      tee "$state/report/report.log" >&2 || rc=$?
    [ "$rc" = 0 ] || log "isoflop report failed (status $rc; 124: over 60 s)"
  else
    log "no 'isoflop report' in this bundle: sweep status and list only"
  fi
  "$bin/isoflop" sweep status "$sweep_id" >"$state/report/status.txt" 2>&1 || true
  "$bin/isoflop" sweep list >"$state/report/list.txt" 2>&1 || true
  "$bin/isoflop" --format json sweep status "$sweep_id" >"$state/report/status.json" 2>/dev/null || true
}
finish() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  [ -n "$sweep_rc" ] && rc=$sweep_rc
  if [ -n "$coordinator_pid" ] && kill -0 "$coordinator_pid" 2>/dev/null; then
    report
    "$bin/isoflop" admin backup --db "$state/isoflop.db" --out "$state/isoflop-backup.db" >&2 ||
      log "admin backup failed: packing the database file itself"
  fi
  log "stopping the worker, nvidia-smi and the coordinator (SIGTERM)"
  stop "$worker_pid" 20; stop "$smi_pid" 2; stop "$coordinator_pid" 10
  local skip_db=()
  [ -s "$state/isoflop-backup.db" ] && skip_db=(--exclude=./isoflop.db --exclude=./isoflop.db-wal --exclude=./isoflop.db-shm)
  {
    echo "config: $config"; echo "sweep: ${sweep_id:-none}  exit status: $rc  wall: $(elapsed) s"
    echo "trainer build: ${build_s:-?} s  sweep: ${sweep_s:-?} s"
    if [ -f "$state/submit.log" ]; then
      echo; echo "--- isoflop sweep submit --wait (its end)"
      if grep -q '^all trials ended' "$state/submit.log"; then sed -n '/^all trials ended/,$p' "$state/submit.log"
      else tail -n 30 "$state/submit.log"; fi
    fi
    [ -f "$state/report/report.md" ] && { echo; echo "--- report.md"; head -c 20000 "$state/report/report.md"; }
    [ -f "$state/report/status.txt" ] && { echo; echo "--- sweep status"; head -c 8000 "$state/report/status.txt"; }
  } >"$OUT/summary.txt" 2>&1
  cp "$OUT/summary.txt" "$OUT/steps.log" "$state/" 2>/dev/null
  # The device returns few files: everything but checkpoints and the live database goes into one archive.
  tar -C "$state" --exclude=./checkpoints --exclude=./token --exclude=./worker_token --exclude=./isoflop.db.lock "${skip_db[@]}" -czf "$OUT/all.tgz.tmp" . && mv "$OUT/all.tgz.tmp" "$OUT/all.tgz"
  log "packed $OUT/all.tgz ($(du -h "$OUT/all.tgz" 2>/dev/null | cut -f1)); state in $state; wall time $(elapsed) s; exit $rc"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

# --- the service binaries: unpack the bundle's service.tar.gz once ------------------------------------------------
[ -f "$bundle/service.tar.gz" ] || die "no $bundle/service.tar.gz: run scripts/bundle.sh first and carry $bundle"
svc=${ISOFLOP_SERVICE_DIR:-/tmp/isoflop-service}
if [ "$(cat "$svc/.key" 2>/dev/null)" != "$(cat "$bundle/service.key")" ]; then
  log "unpacking $bundle/service.tar.gz into $svc"
  rm -rf "$svc"; mkdir -p "$svc"
  tar -C "$svc" -xzf "$bundle/service.tar.gz"
  cp "$bundle/service.key" "$svc/.key"
fi
bin=$svc/bin
for b in isoflop isoflop-coordinator isoflop-worker isoflop-data; do
  "$bin/$b" --help >/dev/null 2>&1 || { ldd "$bin/$b" | grep 'not found' >&2; die "$bin/$b does not run here"; }
done
cp "$svc/MANIFEST" "$state/bundle-MANIFEST"; cp "$config" "$state/"
git -C "$root" log -1 --format='%h %s' >"$state/git.txt" 2>/dev/null || true

# --- the trainer ----------------------------------------------------------------------------------------------------
t_build=$(date +%s)
if [ "$cpu" = 1 ]; then
  tb=${ISOFLOP_BUILD_DIR:-$root/build}
  log "building isoflop-trainer in $tb (CPU test)"
  [ -f "$tb/build.ninja" ] || die "$tb is not configured: scripts/setup.sh isoflop-trainer"
  cmake --build "$tb" --target isoflop-trainer >"$state/trainer-build.log" 2>&1 ||
    { tail -n 50 "$state/trainer-build.log" >&2; die "trainer build"; }
else
  tb=${ISOFLOP_TRAINER_BUILD_DIR:-/tmp/b}
  py=${ISOFLOP_TORCH_PYTHON:-/opt/torch/.venv/bin/python}
  nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv >"$state/gpu.txt" 2>&1 ||
    { cat "$state/gpu.txt" >&2; die "nvidia-smi (no GPU? try --cpu)"; }
  cat "$state/gpu.txt" >&2
  # The trainer links Debian's abseil from the bundle (it finds it by its build RPATH; LD_LIBRARY_PATH as a fallback,
  # inherited by the trainers: our service binaries ignore it, their DT_RPATH comes first).
  export LD_LIBRARY_PATH=$bundle/absl/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  if [ ! -f "$tb/CMakeCache.txt" ]; then
    torch_prefix=$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)') || die "no torch in $py"
    generator=(); command -v ninja >/dev/null && generator=(-G Ninja)
    log "configuring $tb against $torch_prefix and $bundle/absl"
    cmake "${generator[@]}" -S "$root" -B "$tb" -DCMAKE_BUILD_TYPE=Release -DISOFLOP_WITH_SERVICE=OFF \
      -DISOFLOP_BUILD_TESTS=OFF -DISOFLOP_WERROR=OFF -DCMAKE_PREFIX_PATH="$torch_prefix;$bundle/absl" \
      >"$state/trainer-configure.log" 2>&1 || { tail -n 50 "$state/trainer-configure.log" >&2; die "trainer configure"; }
  fi
  log "building isoflop-trainer in $tb"
  cmake --build "$tb" --target isoflop-trainer -j "$(nproc)" >"$state/trainer-build.log" 2>&1 ||
    { tail -n 50 "$state/trainer-build.log" >&2; die "trainer build"; }
fi
trainer=$tb/bin/isoflop-trainer
"$trainer" --help >/dev/null 2>&1 || { ldd "$trainer" | grep 'not found' >&2; die "$trainer does not run"; }
build_s=$(( $(date +%s) - t_build ))
log "trainer ready in $build_s s: $trainer"

# --- data -------------------------------------------------------------------------------------------------------------
[ -e "$data/kjv-bpe10000" ] || ln -s "$bundle/data/kjv-bpe10000" "$data/kjv-bpe10000"
for s in "${synths[@]}"; do
  name=${s%%:*}; flags=; [ "$name" = "$s" ] || flags=${s#*:}
  if [ -f "$data/$name/val.bin" ] && [ -f "$data/$name/meta.json" ]; then
    log "dataset $name present in $data"
  else
    log "isoflop-data synth --out $data/$name $flags"
    rm -rf "${data:?}/$name"
    # shellcheck disable=SC2086  # FLAGS are words
    "$bin/isoflop-data" synth --out "$data/$name" $flags >&2 || die "synth $name"
  fi
done
dataset=$(grep -oE '^[^#]*dataset: *"[^"]*"' "$config" | head -n1 | sed 's/.*"\(.*\)"/\1/')
if [ -n "$dataset" ] && [ ! -f "$data/$dataset/val.bin" ]; then
  die "the config's dataset $dataset is not in $data (there: $(cd "$data" && echo *)); add --synth $dataset:FLAGS"
fi
if [ "$cpu" = 0 ] && grep -qE '^[^#]*gpus_per_trial: *0\b' "$config"; then
  log "WARNING: the config asks for gpus_per_trial: 0; a --gpus worker offers GPUs only"
fi

# --- coordinator, worker, GPU log ---------------------------------------------------------------------------------
log "starting isoflop-coordinator (state $state)"
"$bin/isoflop-coordinator" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --db "$state/isoflop.db" \
  >"$state/coordinator.log" 2>&1 &
coordinator_pid=$!
for _ in $(seq 200); do
  grep -q 'listening on' "$state/coordinator.log" && break
  kill -0 "$coordinator_pid" 2>/dev/null || { cat "$state/coordinator.log" >&2; die "the coordinator exited"; }
  sleep 0.05
done
address=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$state/coordinator.log" | head -n1)
[ -n "$address" ] || { cat "$state/coordinator.log" >&2; die "the coordinator did not start listening"; }
export ISOFLOP_ADDRESS=$address
export ISOFLOP_TOKEN_FILE=$state/token  # written (0600) beside the database before it listened
log "coordinator on $address; dashboard $(sed -n 's/.*dashboard on //p' "$state/coordinator.log" | head -n1)"

if [ "$cpu" = 1 ]; then
  resources=(--cpu-slots "${ISOFLOP_CPU_SLOTS:-2}")
else
  resources=(--gpus "$gpus")
  nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv -l "${ISOFLOP_GPU_LOG_S:-5}" \
    >"$state/gpu-util.csv" 2>&1 &
  smi_pid=$!
fi
# shellcheck disable=SC2086  # ISOFLOP_WORKER_ARGS are words
"$bin/isoflop-worker" --coordinator "$address" --token-file "$state/worker_token" --data-dir "$data" --trainer "$trainer" "${resources[@]}" \
  --logs-dir "$state/logs" --checkpoint-dir "$state/checkpoints" ${ISOFLOP_WORKER_ARGS:-} >"$state/worker.log" 2>&1 &
worker_pid=$!
sleep 1
kill -0 "$worker_pid" 2>/dev/null || { cat "$state/worker.log" >&2; die "the worker exited"; }
log "worker: ${resources[*]} ${ISOFLOP_WORKER_ARGS:-}"

# --- the sweep ------------------------------------------------------------------------------------------------------
wait_s=$(( deadline_s - $(elapsed) - 60 )); [ "$wait_s" -ge 30 ] || wait_s=30
log "isoflop sweep submit $(basename "$config") --wait (at most $wait_s s)"
t_sweep=$(date +%s)
set +e
timeout "$wait_s" "$bin/isoflop" sweep submit "$config" --wait 2>&1 | tee "$state/submit.log" >&2
sweep_rc=${PIPESTATUS[0]}
set -e
sweep_s=$(( $(date +%s) - t_sweep ))
sweep_id=$(sed -n 's/^submitted sweep \([^ ]*\).*/\1/p' "$state/submit.log" | head -n1)
log "sweep ${sweep_id:-?} ended with status $sweep_rc after $sweep_s s"
if [ "$sweep_rc" = 124 ] && [ -n "$sweep_id" ]; then
  log "the deadline cut the sweep: cancelling it"
  "$bin/isoflop" sweep cancel "$sweep_id" >&2 || true
fi
report
