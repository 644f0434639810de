#!/usr/bin/env bash
# A whole IsoFLOP sweep on the GPU machine (issue 9), in one device call (at most 600 s): the synthetic-data sweep, the same sweep on
# KJV text at smaller budgets, each through scripts/gpu_sweep.sh (coordinator + worker + trainer from the bundle),
# then decode throughput (isoflop-trainer generate --bench) and the throughput of 1 vs 3 concurrent trainers of a
# small model on the one GPU. Needs .bundle (scripts/bundle.sh)
# carried along. Results under $OUT/synth, $OUT/kjv (all.tgz, summary.txt, steps.log), $OUT/decode.txt and $OUT/concurrency.txt.
#   run: carry [".bundle"], command: OUT=$OUT bash bench/gpu/sweep.sh
set -u
OUT=${OUT:-/tmp/out}
start=$(date +%s)
left() { echo $(( ${ISSUE9_BUDGET_S:-570} - ($(date +%s) - start) )); }
per_gpu=${ISSUE9_TRIALS_PER_GPU:-3}

ISOFLOP_WORKER_ARGS="--trials-per-gpu $per_gpu" OUT=$OUT/synth scripts/gpu_sweep.sh \
  --synth 'synth-v10k:--vocab-size 10000 --train-tokens 1e8 --seed 1' --deadline-s "${ISSUE9_SYNTH_S:-370}" \
  configs/gpu-synth.textproto >"$OUT/synth.log" 2>&1
echo "synth: exit $? after $(( $(date +%s) - start )) s"

ISOFLOP_WORKER_ARGS="--trials-per-gpu $per_gpu" OUT=$OUT/kjv scripts/gpu_sweep.sh \
  --deadline-s "$(( $(left) - 85 ))" configs/gpu-kjv.textproto >"$OUT/kjv.log" 2>&1
echo "kjv: exit $? after $(( $(date +%s) - start )) s"

export LD_LIBRARY_PATH=$PWD/.bundle/absl/lib/x86_64-linux-gnu
tr=${ISOFLOP_TRAINER_BUILD_DIR:-/tmp/b}/bin/isoflop-trainer
# Decoding (issue 10): the seed model with random weights, KV cache, batch 1 and 64, CUDA graph of the decode step
# on and off.
if [ "$(left)" -gt 75 ]; then
  { echo "== cuda graphs on"; timeout 30 "$tr" generate --bench --device cuda --bench-batches 1,64 2>&1
    echo "== cuda graphs off"; timeout 25 "$tr" generate --bench --device cuda --bench-batches 1,64 \
      --cuda-graphs false 2>&1; } >"$OUT/decode.txt"
  cat "$OUT/decode.txt"
fi

# Several trainers on one GPU: plain processes time-share it; what they gain is the host-side time (start-up, data,
# validation, launches) of one overlapping the GPU work of another.
if [ "$(left)" -gt 35 ]; then
  args=(bench --vocab-size 10000 --context 256 --d-model 128 --n-layers 2 --n-heads 4 --d-ff 512
        --batch-sequences 16 --steps 600 --untimed-steps 30 --device cuda --precision auto
        --lr 1e-3 --schedule cosine --warmup-steps 0 --min-lr-fraction 0.1 --weight-decay 0.1 --beta2 0.95
        --seed 0 --threads 1)
  {
    echo "== 1 process"; timeout 30 "$tr" "${args[@]}" 2>/dev/null
    echo "== 3 processes at once"
    for i in 1 2 3; do timeout 40 "$tr" "${args[@]}" 2>/dev/null & done; wait
  } >"$OUT/concurrency.txt"
  cat "$OUT/concurrency.txt"
fi
echo "total $(( $(date +%s) - start )) s"
