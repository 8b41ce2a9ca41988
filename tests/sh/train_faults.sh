#!/usr/bin/env bash
# Failure paths of `slimclr train` over MPI, and gradient accumulation:
#  - NaN: lr 1e4 with weight decay 1 (the weights grow x1e4 a step; BN hides it until they overflow) on 2 ranks -> exit 3 with the message at one step on every rank (no hang, no later
#    metrics line), the last good checkpoint intact (every CRC verified);
#  - a rank killed with -9 in a 3-rank run: the job ends non-zero within 30 s;
#  - a global batch the rank count does not divide: refused (exit 2, message naming optim.batch) before any work;
#  - accum 2: with sync BN each micro-batch normalises over its global micro-batch, so accum=2 on 1, 2 and 3 ranks
#    must agree within 1e-4 (accum=1 with the same global batch is a different computation: BN statistics over
#    48 instead of 24 images; it only has to land within 5% at step 1).
set -u
source tests/sh/common.inc

# NaN
t0=$(date +%s)
run_train mocov2 2 "$TMPD/nan" --set optim.lr=10000 --set optim.weight_decay=1 --set checkpoint.every_steps=1
dt=$(( $(date +%s) - t0 ))
last=$(metrics_steps "$TMPD/nan/metrics.jsonl" 2>/dev/null | tail -1)
if [ $rc -eq 3 ] && grep -q "non-finite loss or gradient at step" "$TMPD/nan.log"; then
  echo "ok: NaN: exit 3 after ${dt}s: $(grep non-finite "$TMPD/nan.log")"
else echo "FAIL: NaN: exit $rc"; tail "$TMPD/nan.log"; fail=1; fi
good=$(sed -n 's/.*Last good checkpoint: \(.*\)$/\1/p' "$TMPD/nan.log")
stepnan=$(sed -n 's/.*non-finite loss or gradient at step \([0-9]*\).*/\1/p' "$TMPD/nan.log")
check "NaN: last good checkpoint $good intact" $CMP verify "$good"
[ "${last:-0}" -le "${stepnan:-0}" ] || { echo "FAIL: a metrics line (step $last) after the NaN at step $stepnan"; fail=1; }
[ "$(grep -c non-finite "$TMPD/nan.log")" -eq 1 ] || { echo "FAIL: NaN message not exactly once"; fail=1; }

# a dead rank
$MPIRUN --oversubscribe -np 3 "$SLIMCLR_BIN" train yaml/fmnist-slimclr-mocov2.yaml $(train_sets mocov2) \
  --set optim.max_steps=100000 --set run.dir="$TMPD/dead" >"$TMPD/dead.log" 2>&1 &
pid=$!
metrics_wait "$TMPD/dead/metrics.jsonl" 1 30 $pid
victim=$(pgrep -P $pid | sed -n 2p)
t0=$(date +%s); kill -9 "$victim"
( sleep 30; kill -9 $pid 2>/dev/null ) & dog=$!
wait $pid; rc=$?; dt=$(( $(date +%s) - t0 ))
kill $dog 2>/dev/null
if [ $rc -ne 0 ] && [ $dt -lt 30 ]; then echo "ok: rank killed: job ended with exit $rc after ${dt}s"
else echo "FAIL: rank killed: exit $rc after ${dt}s"; fail=1; fi

# bad rank count
for case in "5 24 1" "5 48 2" "4 24 4"; do
  set -- $case
  timeout 30 $MPIRUN --oversubscribe -np $1 "$SLIMCLR_BIN" train yaml/fmnist-slimclr-mocov2.yaml $(train_sets mocov2) \
    --set optim.batch=$2 --set optim.accum=$3 --set method.queue=480 --set run.dir="$TMPD/badp$1" >"$TMPD/badp.log" 2>&1
  rc=$?
  if [ $rc -eq 2 ] && grep -q "optim.batch" "$TMPD/badp.log" && [ ! -e "$TMPD/badp$1" ]; then
    echo "ok: batch $2 accum $3 on $1 ranks refused: $(grep -m1 error "$TMPD/badp.log")"
  else echo "FAIL: batch $2 accum $3 on $1 ranks: exit $rc, run dir $(ls -d "$TMPD/badp$1" 2>/dev/null)"; cat "$TMPD/badp.log"; fail=1; fi
done

# accumulation
acc=(--set optim.batch=48 --set optim.accum=2 --set method.queue=480)
for P in 1 2 3; do run_train mocov2 $P "$TMPD/acc$P" "${acc[@]}"; [ $rc -eq 0 ] || { echo "FAIL: accum on $P: $rc"; fail=1; }; done
for P in 2 3; do
  check "accum 2 on $P ranks vs 1 rank" env TRAIN_CMP_GRAD=1 $CMP metrics "$TMPD/acc1/metrics.jsonl" "$TMPD/acc$P/metrics.jsonl" 1e-4 1 20
done
run_train mocov2 2 "$TMPD/acc0" --set optim.batch=48 --set method.queue=480
check "accum 1 vs 2, step 1 only (different BN batches)" $CMP metrics "$TMPD/acc1/metrics.jsonl" "$TMPD/acc0/metrics.jsonl" 0.05 1 1
exit $fail
