#!/usr/bin/env bash
# A stop signal whose checkpoint fails (a file-size limit below one checkpoint, as a full disk): the run must stop
# there with exit 1, one error naming the checkpoint, no second attempt at the end of the loop, no "done" line and
# no STOPPED_BY_SIGNAL (a job file would requeue on it and lose the steps since the last good checkpoint).
source tests/sh/common.inc
W=$T
mk_small_idx "$FMNIST" "$W/data" 512
ARGS=("$CFG" "${SMALL[@]}" --set data.dir="$W/data" --set data.subset=0 --set run.threads=1 --set run.dir="$W/run"
      --set optim.max_steps=200 --set checkpoint.every_steps=0)
# the limit inside the rank (mpirun and MPI_Init need large shared-memory files of their own); 64 KB < a checkpoint
"$MPIRUN" -np 1 bash -c 'trap "" XFSZ; ulimit -f 64; exec "$@"' _ "$SLIMCLR_BIN" train "${ARGS[@]}" >"$W/a.log" 2>&1 &
pid=$!
metrics_wait "$W/run/metrics.jsonl" 3 60 $pid
kill -USR1 $pid
( sleep 120; kill -9 $pid 2>/dev/null ) & dog=$!
wait $pid; rc=$?
kill $dog 2>/dev/null
bad=0
[ $rc -eq 1 ] || { echo "FAIL: exit $rc, expected 1"; bad=1; }
n=$(grep -c 'error: checkpoint at step' "$W/a.log")
[ "$n" -eq 1 ] || { echo "FAIL: $n checkpoint attempts reported, expected 1"; bad=1; }
grep -q '^done:' "$W/a.log" && { echo "FAIL: the run printed done"; bad=1; }
[ -e "$W/run/STOPPED_BY_SIGNAL" ] && { echo "FAIL: STOPPED_BY_SIGNAL written after a failed checkpoint"; bad=1; }
grep -E 'signal|error' "$W/a.log" | head -5
[ $bad = 0 ] && echo "ok: signal + failed checkpoint: exit 1, one attempt, no done, no marker"
exit $bad
