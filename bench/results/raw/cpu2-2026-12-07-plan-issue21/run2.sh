#!/usr/bin/env bash
# Device call 2: wait for the demo started by run1.sh, then its figures: the sweep's wall time, each attempt's.
set -u
OUT=${OUT:-/tmp/out}
st=/tmp/demo-state
for _ in $(seq ${WAIT_S:-560}); do [ -f $st/done ] && break; sleep 1; done
cat /tmp/demo.log
if [ ! -f $st/done ]; then
  echo "not done yet"; tail -3 $st/submit.err; exit 3
fi
cat $st/done
python3 - <<'PY' | tee $OUT/attempts.txt
import sqlite3
db = sqlite3.connect('/tmp/demo-state/isoflop.db')
rows = db.execute("select a.trial_id, a.started_unix_ms, a.ended_unix_ms, t.tokens, t.tokens_per_s, t.n_total, t.flops_budget, t.val_loss from attempts a join trials t on t.id = a.trial_id order by a.started_unix_ms").fetchall()
t0 = min(r[1] for r in rows); t1 = max(r[2] for r in rows)
print("attempts span %.1f s, %d attempts, sum %.1f s" % ((t1 - t0) / 1e3, len(rows), sum(r[2] - r[1] for r in rows) / 1e3))
for r in rows:
    print("%s C=%g N=%d start %.1f dur %.2f train %.2f tok/s %.0f val %.4f" % (r[0], r[6], r[5], (r[1] - t0) / 1e3, (r[2] - r[1]) / 1e3, r[3] / r[4] if r[4] else 0, r[4] or 0, r[7] or 0))
PY
cp $st/done $st/submit.out $st/submit.err $OUT/ 2>/dev/null
tar -C $st -czf $OUT/demo-state.tgz --exclude=./logs/checkpoints .
