#!/usr/bin/env bash
# Decoding throughput and CPU/CUDA agreement of `isoflop-trainer generate` on the GPU machine (issue 10), in one
# device call: builds isoflop-trainer against the host's torch (as
# scripts/gpu_sweep.sh), then
#   1. generate --bench on the seed model (vocab 10000, d 512, L 4, H 16, d_ff 2048, T 256, random weights, bf16)
#      at batch 1 and 64, with the decode step in a CUDA graph and without;
#   2. the same greedy requests (continuous batching, 3 slots) on CPU and on CUDA fp32 with and without the graph:
#      the token lines must be identical (.bundle/gen/model.bin, reqs.jsonl and cpu.txt made here on CPU).
# Needs .bundle/absl (scripts/bundle.sh) and .bundle/gen carried; .bundle/gen is made here with
#   build/bin/isoflop-trainer train ... --checkpoint-dir RUN (every trial value as a flag, trainer/README.md) (any small model; RUN/model.bin -> .bundle/gen/),
#   a reqs.jsonl of greedy requests, and: isoflop-trainer generate --model .bundle/gen/model.bin \
#     --requests .bundle/gen/reqs.jsonl --max-batch 3 | grep -v ttft >.bundle/gen/cpu.txt Results in $OUT/issue10.txt.
#   run: carry [".bundle"], command: OUT=$OUT bash bench/gpu/generate.sh
set -u
OUT=${OUT:-/tmp/out}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tb=${ISOFLOP_TRAINER_BUILD_DIR:-/tmp/b}
py=${ISOFLOP_TORCH_PYTHON:-/opt/torch/.venv/bin/python}
export LD_LIBRARY_PATH=$root/.bundle/absl/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
exec > >(tee "$OUT/issue10.txt") 2>&1
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv
t0=$(date +%s)
if [ ! -f "$tb/CMakeCache.txt" ]; then
  cmake -G Ninja -S "$root" -B "$tb" -DCMAKE_BUILD_TYPE=Release -DISOFLOP_WITH_SERVICE=OFF -DISOFLOP_BUILD_TESTS=OFF \
    -DISOFLOP_WERROR=OFF -DCMAKE_PREFIX_PATH="$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)');$root/.bundle/absl" \
    >"$OUT/configure.log" 2>&1 || { tail -n 30 "$OUT/configure.log"; exit 1; }
fi
cmake --build "$tb" --target isoflop-trainer -j "$(nproc)" >"$OUT/build.log" 2>&1 || { tail -n 40 "$OUT/build.log"; exit 1; }
echo "== build $(( $(date +%s) - t0 )) s"
tr=$tb/bin/isoflop-trainer

echo "== 1. generate --bench, seed model, bf16, CUDA graph"
s=$(date +%s)
timeout 60 "$tr" generate --bench --device cuda --bench-batches 1,64
echo "wall $(( $(date +%s) - s )) s"
echo "== 1b. the same without the CUDA graph"
timeout 60 "$tr" generate --bench --device cuda --bench-batches 1,64 --cuda-graphs false

echo "== 2. continuous batching on CUDA fp32 vs CPU (token lines must match)"
g=$root/.bundle/gen
for graph in true false; do
  timeout 60 "$tr" generate --model "$g/model.bin" --requests "$g/reqs.jsonl" --max-batch 3 --device cuda \
    --dtype fp32 --cuda-graphs $graph 2>&1 >"$OUT/cuda-$graph.jsonl" | tail -n 3
  # Byte order, so that the sort here and there agree whatever the locales.
  grep -v ttft "$OUT/cuda-$graph.jsonl" | LC_ALL=C sort >"$OUT/cuda-$graph.txt"
  LC_ALL=C sort "$g/cpu.txt" >"$OUT/cpu.txt"
  if cmp -s "$OUT/cuda-$graph.txt" "$OUT/cpu.txt"; then echo "cuda graph=$graph: identical to CPU ($(wc -l <"$g/cpu.txt") lines)"
  else echo "cuda graph=$graph: DIFFERS from CPU"; diff "$OUT/cuda-$graph.txt" "$OUT/cpu.txt" | head; fi
done
echo "== 3. bf16 (the fused RMSNorm kernels of trainer/cuda/): graph and eager decode give the same tokens"
for graph in true false; do
  timeout 60 "$tr" generate --model "$g/model.bin" --requests "$g/reqs.jsonl" --max-batch 3 --device cuda \
    --dtype bf16 --cuda-graphs $graph 2>/dev/null | grep -v ttft | LC_ALL=C sort >"$OUT/bf16-$graph.txt"
done
if [ -s "$OUT/bf16-true.txt" ] && cmp -s "$OUT/bf16-true.txt" "$OUT/bf16-false.txt"; then
  echo "bf16: graph = eager ($(wc -l <"$OUT/bf16-true.txt") lines); tokens equal to fp32 CPU in $(LC_ALL=C comm -12 "$OUT/bf16-true.txt" "$OUT/cpu.txt" | wc -l) lines"
else echo "bf16: graph and eager DIFFER or are empty"; diff "$OUT/bf16-true.txt" "$OUT/bf16-false.txt" | head; fi
echo "== total $(( $(date +%s) - t0 )) s"
