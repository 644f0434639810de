#!/usr/bin/env bash
# Device call 1: service from the bundle + this branch's isoflop, trainer built against the host's LibTorch,
# `sweep plan` of the demo pinned to 2 CPUs of distinct cores (measured), then the demo itself started in the
# background (setsid) on the same 2 CPUs with a 2-slot worker.
set -u
D=$PWD/.cache/plan-device
OUT=${OUT:-/tmp/out}
export LD_LIBRARY_PATH=$PWD/.bundle/absl/lib/x86_64-linux-gnu
svc=/tmp/svc; rm -rf $svc; mkdir -p $svc; tar -C $svc -xzf .bundle/service.tar.gz
cp $D/isoflop $svc/bin/isoflop
$svc/bin/isoflop --help >/dev/null || { ldd $svc/bin/isoflop | grep 'not found'; exit 1; }
py=/opt/torch/.venv/bin/python
tp=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)')
t0=$(date +%s)
cmake -G Ninja -S . -B /tmp/b -DCMAKE_BUILD_TYPE=Release -DISOFLOP_WITH_SERVICE=OFF -DISOFLOP_BUILD_TESTS=OFF \
  -DISOFLOP_WERROR=OFF -DCMAKE_PREFIX_PATH="$tp;$PWD/.bundle/absl" >$OUT/configure.log 2>&1 || { tail -30 $OUT/configure.log; exit 1; }
cmake --build /tmp/b --target isoflop-trainer -j "$(nproc)" >$OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
echo "trainer built in $(( $(date +%s) - t0 )) s"
cpus=$(python3 - <<'PY'
import glob, os
seen, pick = set(), []
for c in sorted(glob.glob('/sys/devices/system/cpu/cpu[0-9]*'), key=lambda p: int(p.rsplit('cpu', 1)[1])):
    try:
        key = (open(c + '/topology/physical_package_id').read().strip(), open(c + '/topology/core_id').read().strip())
    except OSError:
        continue
    if key in seen: continue
    seen.add(key); pick.append(c.rsplit('cpu', 1)[1])
    if len(pick) == 2: break
print(','.join(pick) if len(pick) == 2 else '0,1')
PY
)
PIN="taskset -c $cpus"; $PIN true || { echo "taskset failed: not pinned"; PIN=""; cpus=""; }
echo "cpus $cpus"
{ lscpu; nproc; } >$OUT/lscpu.txt 2>&1
data=/tmp/data; rm -rf $data; mkdir -p $data; cp -r $D/data/kjv-bpe512 $data/
P=(sweep plan configs/demo-cpu.textproto --data-dir $data --trainer /tmp/b/bin/isoflop-trainer --throughput-cache /tmp/tc.json --slots 2)
t0=$(date +%s.%N)
$PIN $svc/bin/isoflop "${P[@]}" >$OUT/plan.txt 2>$OUT/plan.err
echo "plan with measurement: $(python3 -c "import time; print(round(time.time() - $t0, 1))") s"
$PIN $svc/bin/isoflop --format json "${P[@]}" >$OUT/plan.json 2>>$OUT/plan.err
cp /tmp/tc.json $OUT/throughput.json
cat $OUT/plan.err $OUT/plan.txt
setsid bash $D/demo.sh "$cpus" $svc $data >/tmp/demo.log 2>&1 </dev/null &
sleep 5; cat /tmp/demo.log
