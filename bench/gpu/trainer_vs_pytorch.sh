#!/usr/bin/env bash
# The trainer's step time, tokens/s and MFU beside PyTorch on the GPU machine,
# in one run (issue 6): builds isoflop-trainer, times it beside
# bench/gpu/torch_reference.py (eager, torch.compile, reduce-overhead), runs the
# loss-curve / precision / DDP checks (bench/gpu/check_trainer_vs_pytorch.py)
# and a profile, and tables it all (bench/gpu/summarize_trainer_vs_pytorch.py).
# Writes under $OUT; results: bench/results/README.md.
#   bash bench/gpu/trainer_vs_pytorch.sh [dev|full|quick|b64|probe|confirm|refs]
# quick: the C++ bench of the three configs with the GELU epilogues off
# (--legacy, see trainer/options.h) and with each --attention
# kernel, the profiles, the correctness checks and the reduce-overhead
# references (the best PyTorch mode of every config; REFS=0: none) only.
set -u
PHASE=${1:-full}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
ROOT=$PWD
PY=/opt/torch/.venv/bin/python
B=/tmp/b
export LD_LIBRARY_PATH=$ROOT/.bundle/absl/lib/x86_64-linux-gnu
DATA=$ROOT/.bundle/data/kjv-bpe10000
pack() {  # the device returns few files: pack everything into one
  tar -C "$OUT" -czf /tmp/all.tgz . && mv /tmp/all.tgz "$OUT/all.tgz"
  find "$OUT" -type f ! -name all.tgz ! -name checks.json ! -name steps.log ! -name summary.md -delete
}
trap 'summary; pack' EXIT
log() { echo "== $(date +%T) $*" | tee -a "$OUT/steps.log"; }

log build
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$OUT/gpu.txt" 2>&1
if [ ! -x $B/bin/isoflop-trainer ]; then
  cmake -G Ninja -S . -B $B -DCMAKE_BUILD_TYPE=Release -DISOFLOP_WITH_SERVICE=OFF \
    -DISOFLOP_BUILD_TESTS=OFF -DISOFLOP_WERROR=OFF \
    -DCMAKE_PREFIX_PATH="$($PY -c 'import torch;print(torch.utils.cmake_prefix_path)');$ROOT/.bundle/absl" \
    > "$OUT/cmake.log" 2>&1
fi
{ command -v nvcc; ls -l /usr/local/cuda/bin/nvcc; grep "trainer CUDA kernels" "$OUT/cmake.log"; } >> "$OUT/gpu.txt" 2>&1
ninja -C $B isoflop-trainer > "$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
if ninja -C $B trainer_kernel_check >> "$OUT/build.log" 2>&1; then
  $B/bin/trainer_kernel_check > "$OUT/kernel_check.json" 2>&1; log "kernel check rc=$? $(cat "$OUT/kernel_check.json")"
fi
TR=$B/bin/isoflop-trainer
SEED="--vocab-size 10000 --context 256 --d-model 512 --n-layers 4 --n-heads 16 --d-ff 2048"
BIG="--vocab-size 10000 --context 1024 --d-model 1024 --n-layers 12 --n-heads 16 --d-ff 4096"
# The trainer requires a trial's optimizer values (trainer/options.h): these
# are the values every figure in bench/results was measured with.
OPT="--lr 1e-3 --schedule cosine --warmup-steps 0 --min-lr-fraction 0.1 --weight-decay 0.1 --beta2 0.95 --seed 0 --threads 1"
EVAL="--eval-every 0 --eval-batches 8"
TRAINV="--schedule cosine --min-lr-fraction 0.1 --weight-decay 0.1 --beta2 0.95 --seed 0 --threads 1 $EVAL"
BIGPY="--vocab 10000 --context 1024 --d-model 1024 --n-layers 12 --n-heads 16 --d-ff 4096 --batch 32"  # bench/gpu/torch_reference.py's flags

cpp() {  # name, args...: one bench JSON line in $OUT/name.json
  local name=$1; shift
  local s; s=$(date +%s.%N)
  timeout 120 $TR bench "$@" $OPT --device cuda --start-time "$s" > "$OUT/$name.json" 2> "$OUT/$name.err"
  log "$name rc=$? $(cat "$OUT/$name.json")"
}
ref() {  # name, args...: one torch_reference JSON line
  local name=$1; shift
  local s; s=$(date +%s.%N)
  TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) timeout 200 $PY bench/gpu/torch_reference.py bench "$@" \
    --start-time "$s" > "$OUT/$name.json" 2> "$OUT/$name.err"
  log "$name rc=$? $(cat "$OUT/$name.json")"
}

checks() {  # loss curves vs PyTorch, graph vs eager, fp32 CPU/CUDA, resume
  log "curves"
  TRAIN="--data-dir $DATA $SEED --batch-sequences 16 --steps 200 --lr 1e-3 --warmup-steps 20 --log-every 1 --device cuda $TRAINV"
  timeout 120 $TR train $TRAIN --precision bf16 > "$OUT/curve_cpp_graph.jsonl" 2> "$OUT/curve_cpp_graph.err"
  timeout 120 $TR train $TRAIN --precision bf16 --cuda-graphs false > "$OUT/curve_cpp_eager.jsonl" 2> "$OUT/curve_cpp_eager.err"
  timeout 120 $TR train $TRAIN --precision bf16-autocast > "$OUT/curve_cpp_autocast.jsonl" 2> "$OUT/curve_cpp_autocast.err"
  timeout 200 $PY bench/gpu/torch_reference.py curve --data-dir "$DATA" --batch 16 --curve-steps 200 \
    --lr 1e-3 --warmup-steps 20 > "$OUT/curve_py.json" 2> "$OUT/curve_py.err"
  SMALL="--data-dir $DATA --vocab-size 10000 --context 64 --d-model 64 --n-layers 2 --n-heads 4 --d-ff 256 --batch-sequences 8 --steps 10 --lr 1e-3 --warmup-steps 0 --log-every 1 --precision fp32 $TRAINV"
  timeout 120 $TR train $SMALL --device cpu > "$OUT/fp32_cpu.jsonl" 2> "$OUT/fp32_cpu.err"
  timeout 120 $TR train $SMALL --device cuda > "$OUT/fp32_cuda.jsonl" 2> "$OUT/fp32_cuda.err"
  log "resume on GPU"
  RES="--data-dir $DATA $SEED --batch-sequences 16 --steps 300 --lr 1e-3 --warmup-steps 20 --log-every 1 --device cuda --precision bf16 $TRAINV"
  timeout 120 $TR train $RES > "$OUT/resume_full.jsonl" 2>/dev/null
  rm -rf /tmp/ck; ( timeout 120 $TR train $RES --checkpoint-dir /tmp/ck --resume > "$OUT/resume_a.jsonl" 2> "$OUT/resume_a.err" & P=$!
    for i in $(seq 3000); do grep -q '"step": 150,' "$OUT/resume_a.jsonl" 2>/dev/null && break; sleep 0.01; done
    kill -TERM $P; wait $P; echo "rc=$?" >> "$OUT/resume_a.err" )
  timeout 120 $TR train $RES --checkpoint-dir /tmp/ck --resume > "$OUT/resume_b.jsonl" 2> "$OUT/resume_b.err"
  $PY bench/gpu/check_trainer_vs_pytorch.py "$OUT" > "$OUT/checks.json" 2>&1; cat "$OUT/checks.json"
}
summary() { $PY bench/gpu/summarize_trainer_vs_pytorch.py "$OUT" > "$OUT/summary.md" 2>&1; }

if [ "$PHASE" = quick ]; then
  log "C++ bench, fused step (default), the GELU epilogues, the embedding backward or the fused AdamW off, flash attention"
  for v in "" gelu embedding adamw; do
    n=${v:+_legacy_${v/,/_}}; L=${v:+--legacy $v}
    cpp cpp_seed_b16$n $SEED --batch-sequences 16 --steps 300 --untimed-steps 20 --precision bf16 $L
    cpp cpp_seed_b64$n $SEED --batch-sequences 64 --steps 200 --untimed-steps 20 --precision bf16 $L
    cpp cpp_big_b32$n $BIG --batch-sequences 32 --steps 30 --untimed-steps 5 --precision bf16 $L
  done
  for a in flash; do
    cpp cpp_seed_b16_attn_$a $SEED --batch-sequences 16 --steps 300 --untimed-steps 20 --precision bf16 --attention $a
    cpp cpp_seed_b64_attn_$a $SEED --batch-sequences 64 --steps 200 --untimed-steps 20 --precision bf16 --attention $a
    cpp cpp_big_b32_attn_$a $BIG --batch-sequences 32 --steps 30 --untimed-steps 5 --precision bf16 --attention $a
  done
  log "profile"
  timeout 120 $TR profile $SEED $OPT --batch-sequences 64 --steps 10 --untimed-steps 10 --device cuda \
    --precision bf16 --cuda-graphs false --trace /tmp/trace_seed.json > "$OUT/profile_seed_b64.txt" 2>&1
  timeout 120 $TR profile $BIG $OPT --batch-sequences 32 --steps 3 --untimed-steps 3 --device cuda \
    --precision bf16 --cuda-graphs false --trace /tmp/trace_big.json > "$OUT/profile_big_b32.txt" 2>&1
  checks
  [ "${REFS:-1}" = 1 ] || exit 0
  log "PyTorch references (reduce-overhead)"
  ref py_seed_b16_ro --mode reduce-overhead --batch 16 --steps 300 --warmup 15
  ref py_seed_b64_ro --mode reduce-overhead --batch 64 --steps 200 --warmup 15
  ref py_big_b32_ro $BIGPY --mode reduce-overhead --steps 30 --warmup 5
fi

if [ "$PHASE" = probe ]; then  # seed B16 variants, DDP 1 rank, a B16 profile
  ddp() { local port=$1; shift; WORLD_SIZE=1 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$@"; }
  for i in 1 2; do
    cpp cpp_seed_b16_$i $SEED --batch-sequences 16 --steps 300 --untimed-steps 20 --precision bf16
    CUBLAS_WORKSPACE_CONFIG=:0:0 cpp cpp_seed_b16_ws0_$i $SEED --batch-sequences 16 --steps 300 --untimed-steps 20 --precision bf16
    TORCH_BLAS_PREFER_CUBLASLT=1 cpp cpp_seed_b16_lt_$i $SEED --batch-sequences 16 --steps 300 --untimed-steps 20 --precision bf16
    cpp cpp_seed_b16_cudnn_$i $SEED --batch-sequences 16 --steps 300 --untimed-steps 20 --precision bf16 --attention cudnn
    cpp cpp_seed_b64_$i $SEED --batch-sequences 64 --steps 200 --untimed-steps 20 --precision bf16
    ddp 2956$i cpp cpp_seed_b64_ddp1_$i $SEED --batch-sequences 64 --steps 200 --untimed-steps 20 --precision bf16
    TORCH_BLAS_PREFER_CUBLASLT=1 cpp cpp_seed_b64_lt_$i $SEED --batch-sequences 64 --steps 200 --untimed-steps 20 --precision bf16
  done
  TRAIN="--data-dir $DATA $SEED --batch-sequences 16 --steps 100 --lr 1e-3 --warmup-steps 20 --log-every 1 --device cuda --precision bf16 $TRAINV"
  timeout 120 $TR train $TRAIN > "$OUT/curve_nodp.jsonl" 2> "$OUT/curve_nodp.err"
  ddp 29571 timeout 120 $TR train $TRAIN > "$OUT/curve_ddp1.jsonl" 2> "$OUT/curve_ddp1.err"
  timeout 120 $TR profile $SEED $OPT --batch-sequences 16 --steps 20 --untimed-steps 10 --device cuda \
    --precision bf16 --cuda-graphs false --trace /tmp/trace_b16.json > "$OUT/profile_seed_b16.txt" 2>&1
  ref py_seed_b16_ro --mode reduce-overhead --batch 16 --steps 300 --warmup 15
fi

if [ "$PHASE" = b64 ]; then  # the seed B64 ratio and the loss curve alone
  cpp cpp_seed_b64 $SEED --batch-sequences 64 --steps 200 --untimed-steps 20 --precision bf16
  ref py_seed_b64_ro --mode reduce-overhead --batch 64 --steps 200 --warmup 15
  cpp cpp_seed_b64_again $SEED --batch-sequences 64 --steps 200 --untimed-steps 20 --precision bf16
  TRAIN="--data-dir $DATA $SEED --batch-sequences 16 --steps 200 --lr 1e-3 --warmup-steps 20 --log-every 1 --device cuda $TRAINV"
  timeout 120 $TR train $TRAIN --precision bf16 > "$OUT/curve_cpp_graph.jsonl" 2> "$OUT/curve_cpp_graph.err"
  timeout 200 $PY bench/gpu/torch_reference.py curve --data-dir "$DATA" --batch 16 --curve-steps 200 \
    --lr 1e-3 --warmup-steps 20 > "$OUT/curve_py.json" 2> "$OUT/curve_py.err"
  $PY bench/gpu/check_trainer_vs_pytorch.py "$OUT" > "$OUT/checks.json" 2>&1
fi

if [ "$PHASE" = confirm ]; then  # every acceptance figure once, no A/B: ~3 min after the build
  # --precision auto: must give bf16 on cuda.
  cpp cpp_seed_b16 $SEED --batch-sequences 16 --steps 300 --untimed-steps 20 --precision auto
  cpp cpp_seed_b64 $SEED --batch-sequences 64 --steps 200 --untimed-steps 20 --precision auto
  cpp cpp_big_b32 $BIG --batch-sequences 32 --steps 30 --untimed-steps 5 --precision auto
  WORLD_SIZE=1 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29555 \
    cpp cpp_seed_b64_ddp1 $SEED --batch-sequences 64 --steps 200 --untimed-steps 20 --precision auto
  checks
  ref py_seed_b16_ro --mode reduce-overhead --batch 16 --steps 300 --warmup 15
  ref py_seed_b64_ro --mode reduce-overhead --batch 64 --steps 200 --warmup 15
  ref py_big_b32_ro $BIGPY --mode reduce-overhead --steps 30 --warmup 5
fi

if [ "$PHASE" = dev ] || [ "$PHASE" = full ]; then
  log "C++ bench"
  cpp cpp_seed_b16 $SEED --batch-sequences 16 --steps 300 --untimed-steps 20 --precision bf16
  [ -s "$OUT/cpp_seed_b16.json" ] || { head -c 3000 "$OUT/cpp_seed_b16.err"; exit 1; }
  cpp cpp_seed_b64 $SEED --batch-sequences 64 --steps 200 --untimed-steps 20 --precision bf16
  cpp cpp_seed_b16_eager $SEED --batch-sequences 16 --steps 100 --untimed-steps 10 --precision bf16 --cuda-graphs false
  cpp cpp_seed_b64_eager $SEED --batch-sequences 64 --steps 100 --untimed-steps 10 --precision bf16 --cuda-graphs false
  cpp cpp_big_b32 $BIG --batch-sequences 32 --steps 30 --untimed-steps 5 --precision bf16
  cpp cpp_seed_b16_autocast $SEED --batch-sequences 16 --steps 300 --untimed-steps 20 --precision bf16-autocast
  cpp cpp_seed_b64_autocast $SEED --batch-sequences 64 --steps 200 --untimed-steps 20 --precision bf16-autocast
  cpp cpp_big_b32_autocast $BIG --batch-sequences 32 --steps 30 --untimed-steps 5 --precision bf16-autocast
  for v in loss norm gelu embedding adamw; do  # each fused piece off in turn
    cpp cpp_seed_b64_legacy_$v $SEED --batch-sequences 64 --steps 200 --untimed-steps 20 --precision bf16 --legacy $v
    cpp cpp_big_b32_legacy_$v $BIG --batch-sequences 32 --steps 30 --untimed-steps 5 --precision bf16 --legacy $v
  done
  for a in cudnn flash; do  # each --attention kernel beside auto (flash for head_dim <= 32, else cudnn)
    cpp cpp_seed_b64_attn_$a $SEED --batch-sequences 64 --steps 200 --untimed-steps 20 --precision bf16 --attention $a
    cpp cpp_big_b32_attn_$a $BIG --batch-sequences 32 --steps 30 --untimed-steps 5 --precision bf16 --attention $a
  done
  WORLD_SIZE=1 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29555 \
    cpp cpp_seed_b64_ddp1 $SEED --batch-sequences 64 --steps 200 --untimed-steps 20 --precision bf16
  cpp cpp_seed_b64_fp16 $SEED --batch-sequences 64 --steps 100 --untimed-steps 20 --precision fp16
  cpp cpp_seed_b64_fp32 $SEED --batch-sequences 64 --steps 30 --untimed-steps 5 --precision fp32

  log "profile"
  timeout 120 $TR profile $SEED $OPT --batch-sequences 64 --steps 10 --untimed-steps 10 --device cuda \
    --precision bf16 --cuda-graphs false --trace "$OUT/trace_seed_b64.json" > "$OUT/profile_seed_b64.txt" 2>&1
  timeout 120 $TR profile $BIG $OPT --batch-sequences 32 --steps 3 --untimed-steps 3 --device cuda \
    --precision bf16 --cuda-graphs false --trace /tmp/trace_big.json > "$OUT/profile_big_b32.txt" 2>&1
  gzip -c "$OUT/trace_seed_b64.json" > "$OUT/trace_seed_b64.json.gz" && rm "$OUT/trace_seed_b64.json"

  checks
fi

if [ "$PHASE" = full ] || [ "$PHASE" = refs ]; then
  log "PyTorch references"
  ref py_seed_b16_eager --mode eager --batch 16 --steps 100 --warmup 10
  ref py_seed_b16_ro --mode reduce-overhead --batch 16 --steps 300 --warmup 15
  ref py_seed_b64_eager --mode eager --batch 64 --steps 100 --warmup 10
  ref py_seed_b64_compile --mode compile --batch 64 --steps 200 --warmup 15
  ref py_seed_b64_ro --mode reduce-overhead --batch 64 --steps 200 --warmup 15
  ref py_big_b32_eager $BIGPY --mode eager --steps 20 --warmup 3
  ref py_big_b32_ro $BIGPY --mode reduce-overhead --steps 30 --warmup 5
fi
log done
