#!/usr/bin/env bash
# The demo's sweep (scripts/demo.sh without the build and the report) on CPUs $1 with a 2-slot worker.
set -u
cpus=$1 svc=$2 data=$3 bin=$2/bin
PIN=""; [ -n "$cpus" ] && PIN="taskset -c $cpus"
export LD_LIBRARY_PATH=$PWD/.bundle/absl/lib/x86_64-linux-gnu
st=/tmp/demo-state; rm -rf $st; mkdir -p $st/logs
t0=$(date +%s.%N)
$PIN $bin/isoflop-coordinator --listen 127.0.0.1:0 --db $st/isoflop.db >$st/coordinator.log 2>&1 &
cpid=$!
for _ in $(seq 200); do grep -q 'listening on' $st/coordinator.log && break; sleep 0.05; done
address=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' $st/coordinator.log | head -n1)
export ISOFLOP_ADDRESS=$address ISOFLOP_TOKEN_FILE=$st/token
$PIN $bin/isoflop-worker --coordinator $address --token-file $st/worker_token --data-dir $data \
  --trainer /tmp/b/bin/isoflop-trainer --cpu-slots 2 --logs-dir $st/logs >$st/worker.log 2>&1 &
wpid=$!
t1=$(date +%s.%N)
$PIN $bin/isoflop sweep submit configs/demo-cpu.textproto --wait --yes >$st/submit.out 2>$st/submit.err
rc=$?
t2=$(date +%s.%N)
python3 -c "print('rc $rc start_to_end %.1f submit_to_end %.1f' % ($t2 - $t0, $t2 - $t1))" >$st/done
kill -TERM $wpid $cpid; wait
