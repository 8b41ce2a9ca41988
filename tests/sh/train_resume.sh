#!/usr/bin/env bash
# Resume: (1) SIGUSR1 to mpirun mid-run -> every rank checkpoints at the same step boundary and exits 0; --resume
# with the same 2 ranks reproduces the uninterrupted run bitwise (losses and final q.params). (2) kill -9 of one
# rank after a periodic checkpoint; --resume (latest) on 3 ranks instead of 2 matches the uninterrupted run
# within 1e-4 per step (summation order changes with P). MoCo v2: the queue, its pointer, the key encoder and
# the data order must all come back.
set -u
source tests/sh/common.inc
# base 8 / batch 48 (~0.1-0.2 s a step on 2 ranks): slow enough to land a signal mid-run
sets=(--set model.base=8 --set optim.batch=48 --set method.queue=480 --set checkpoint.every_steps=5
      --set checkpoint.keep_last=10)
run_train mocov2 2 "$TMPD/ref" "${sets[@]}"
[ $rc -eq 0 ] || { echo "FAIL: reference run exit $rc"; tail "$TMPD/ref.log"; exit 1; }

# start_bg DIR NP: mpirun in the background, pid in $bgpid
start_bg() {
  $MPIRUN --oversubscribe -np "$2" "$SLIMCLR_BIN" train yaml/fmnist-slimclr-mocov2.yaml $(train_sets mocov2) \
    "${sets[@]}" --set run.dir="$1" >"$1.log" 2>&1 &
  bgpid=$!
}
wait_steps() { metrics_wait "$1/metrics.jsonl" "$2" 60 $bgpid; } # DIR N: until step N is logged (or 60 s)

# (1) SIGUSR1
start_bg "$TMPD/sig" 2
wait_steps "$TMPD/sig" 3
kill -USR1 $bgpid
wait $bgpid; rc=$?
if [ $rc -ne 0 ] || [ ! -f "$TMPD/sig/STOPPED_BY_SIGNAL" ]; then
  echo "FAIL: SIGUSR1: exit $rc, marker $(ls "$TMPD/sig")"; tail "$TMPD/sig.log"; fail=1
else
  k=$(cat "$TMPD/sig/STOPPED_BY_SIGNAL")
  echo "ok: SIGUSR1 stopped the run at step $k with exit 0"
  [ "$k" -lt 20 ] || { echo "FAIL: the signal landed after the last step (k=$k): nothing resumed"; fail=1; }
  timeout 120 $MPIRUN --oversubscribe -np 2 "$SLIMCLR_BIN" train yaml/fmnist-slimclr-mocov2.yaml \
    $(train_sets mocov2) "${sets[@]}" --set run.dir="$TMPD/sig" --resume >"$TMPD/sig2.log" 2>&1 \
    || { echo "FAIL: resume after signal"; tail "$TMPD/sig2.log"; fail=1; }
  grep -q "resumed from .*step-$k.ckpt at step $k" "$TMPD/sig2.log" || { echo "FAIL: not resumed at $k"; fail=1; }
  check "signal + resume, same P: losses bitwise" $CMP metrics "$TMPD/ref/metrics.jsonl" "$TMPD/sig/metrics.jsonl" 0 1 20
  check "signal + resume, same P: q.params bitwise" $CMP ckpt "$TMPD/ref/checkpoints/step-20.ckpt" \
    "$TMPD/sig/checkpoints/step-20.ckpt" q.params 0
  check "signal + resume, same P: queue bitwise" $CMP ckpt "$TMPD/ref/checkpoints/step-20.ckpt" \
    "$TMPD/sig/checkpoints/step-20.ckpt" queue 0
fi

# (2) kill -9 of rank 1's process after step 12 (checkpoint at 10), resume on 3 ranks
start_bg "$TMPD/kill" 2
wait_steps "$TMPD/kill" 12
victim=$(pgrep -P $bgpid | tail -1)
kill -9 "$victim" 2>/dev/null
t0=$(date +%s)
( sleep 60; kill -9 $bgpid 2>/dev/null ) & dog=$!
wait $bgpid; rc=$?
kill $dog 2>/dev/null
echo "kill -9: job ended with exit $rc after $(( $(date +%s) - t0 ))s"
[ $rc -ne 0 ] || { echo "FAIL: a killed rank must fail the job"; fail=1; }
last=$(cat "$TMPD/kill/checkpoints/latest" 2>/dev/null)
timeout 120 $MPIRUN --oversubscribe -np 3 "$SLIMCLR_BIN" train yaml/fmnist-slimclr-mocov2.yaml \
  $(train_sets mocov2) "${sets[@]}" --set run.dir="$TMPD/kill" --resume >"$TMPD/kill2.log" 2>&1 \
  || { echo "FAIL: resume on 3 ranks"; tail "$TMPD/kill2.log"; fail=1; }
grep "resumed from" "$TMPD/kill2.log" || { echo "FAIL: did not resume ($last)"; fail=1; }
check "kill -9 + resume 2 -> 3 ranks: losses" $CMP metrics "$TMPD/ref/metrics.jsonl" "$TMPD/kill/metrics.jsonl" 1e-4 1 20
check "kill -9 + resume 2 -> 3 ranks: q.params" $CMP ckpt "$TMPD/ref/checkpoints/step-20.ckpt" \
  "$TMPD/kill/checkpoints/step-20.ckpt" q.params 1e-4
exit $fail
