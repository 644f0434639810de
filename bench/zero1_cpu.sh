#!/usr/bin/env bash
# ZeRO-1 against DDP on CPU (2 ranks through the TCPStore, trainer/README.md
# "ZeRO-1"): the loss curves of fp32 and bf16 runs and each rank's AdamW
# moment bytes. Usage: bench/zero1_cpu.sh TRAINER DATA_DIR OUT_DIR
# (DATA_DIR: train.bin and val.bin of a 64-token vocabulary, e.g. the one
# trainer.TrainerBinary.ZeroOne* writes under its TempDir).
set -euo pipefail
T=$1 DATA=$2 OUT=$3
mkdir -p "$OUT"
ARGS=(train --data-dir "$DATA" --vocab-size 64 --context 32 --d-model 64 --n-layers 2 --n-heads 4
  --d-ff 128 --batch-sequences 8 --steps 60 --lr 1e-2 --warmup-steps 10 --log-every 1 --schedule cosine
  --min-lr-fraction 0.1 --weight-decay 0.1 --beta2 0.95 --seed 0 --threads 1 --eval-every 0
  --eval-batches 8)
for prec in fp32 bf16; do
  # 2-rank DDP is bitwise 1 rank with --grad-accum 2 (trainer.TrainerBinary.TwoRankDdp*)
  "$T" "${ARGS[@]}" --precision $prec --grad-accum 2 >"$OUT/ref_$prec.jsonl" 2>"$OUT/ref_$prec.err"
  WORLD_SIZE=2 RANK=1 MASTER_PORT=31111 "$T" "${ARGS[@]}" --precision $prec --zero-stage 1 \
    >/dev/null 2>"$OUT/z1_$prec.err" &
  WORLD_SIZE=2 RANK=0 MASTER_PORT=31111 "$T" "${ARGS[@]}" --precision $prec --zero-stage 1 \
    >"$OUT/z_$prec.jsonl" 2>"$OUT/z0_$prec.err"
  wait
done
/usr/bin/python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def load(p):
    d = {}
    for line in open(p):
        j = json.loads(line)
        if 'train_loss' in j: d[j['step']] = j['train_loss']
    return d
f32 = load(f'{out}/ref_fp32.jsonl')
for prec in ['fp32', 'bf16']:
    r, z = load(f'{out}/ref_{prec}.jsonl'), load(f'{out}/z_{prec}.jsonl')
    worst = max(abs(z[s] - r[s]) / r[s] for s in r)
    same = max([s for s in r if all(z[t] == r[t] for t in range(1, s + 1))], default=0)
    print(f'{prec}: ZeRO-1 vs DDP worst relative loss difference {worst:.2e}; bitwise through step {same}; '
          f'step 60 {r[60]:.6f} vs {z[60]:.6f}')
    if prec == 'bf16':
        print(f'  (bf16 DDP vs fp32 DDP at step 60: {(r[60] - f32[60]) / f32[60]:.2e})')
PY
grep -h "optimizer state" "$OUT"/*.err
