#!/usr/bin/env bash
# A requeued job: `slimclr train --resume` stopped three times by SIGUSR1 sent to mpirun (which forwards it to
# the ranks, as the job files do) at different steps, then run to the end, gives the uninterrupted run's losses
# bit for bit, each step logged once in metrics.jsonl. Also: exit 0 and a STOPPED_BY_SIGNAL file naming the step
# after each stop (what jobs/*.sbatch requeue on), no such file after the run completes, and --resume on an
# empty run directory starts fresh.
source tests/sh/common.inc
TOTAL=20
SETS=(--set model.base=8 --set optim.batch=48 --set method.queue=960 --set optim.max_steps=$TOTAL
      --set run.log_every=1 --set run.threads=1 --set data.workers=0 --set checkpoint.every_steps=0
      --set checkpoint.every_minutes=0 --set slimclr.slow_start_epoch=0.5 --set data.dir="$(fm_data)")
run() { # dir [args...]
  local d=$1; shift
  timeout 120 $MPIRUN --oversubscribe -np 2 "$SLIMCLR_BIN" train yaml/fmnist-slimclr-mocov2.yaml "${SETS[@]}" \
    --set run.dir="$d" "$@"
}
# "step loss" per metrics line
losses() { python3 tools/metrics_col.py "$1" loss --all; } # every step line, repeats included

run "$T/ref" >"$T/ref.log" 2>&1 || { echo "FAIL: reference run: rc $?"; tail -5 "$T/ref.log"; exit 1; }
[ "$(losses "$T/ref/metrics.jsonl" | wc -l)" -eq $TOTAL ] || { echo "FAIL: reference metrics lines"; fail=1; }

prev=0
for target in 3 8 13; do
  # mpirun itself in the background (not a function or `timeout`): the signal must reach mpirun
  $MPIRUN --oversubscribe -np 2 "$SLIMCLR_BIN" train yaml/fmnist-slimclr-mocov2.yaml "${SETS[@]}" \
    --set run.dir="$T/job" --resume >"$T/seg$target.log" 2>&1 &
  pid=$!
  ( sleep 90; kill -9 $pid 2>/dev/null ) & dog=$!
  metrics_wait "$T/job/metrics.jsonl" $target 60 $pid   # up to 60 s for the target step to be logged
  kill -USR1 $pid 2>/dev/null
  wait $pid; rc=$?
  kill $dog 2>/dev/null; wait $dog 2>/dev/null
  stopped=$(cat "$T/job/STOPPED_BY_SIGNAL" 2>/dev/null)
  if [ $rc -ne 0 ] || [ -z "$stopped" ] || [ "$stopped" -le $prev ] || [ "$stopped" -ge $TOTAL ]; then
    echo "FAIL: stop near step $target: rc $rc, STOPPED_BY_SIGNAL '$stopped' (previous stop $prev)"
    tail -5 "$T/seg$target.log"; fail=1; break
  fi
  grep -q "signal received: checkpointing at step $stopped" "$T/seg$target.log" || { echo "FAIL: no stop message"; fail=1; }
  [ $prev -eq 0 ] && { grep -q "starting fresh" "$T/seg$target.log" || { echo "FAIL: first --resume did not start fresh"; fail=1; }; }
  [ $prev -gt 0 ] && { grep -q "resumed from .*step-$prev.ckpt at step $prev" "$T/seg$target.log" || { echo "FAIL: segment did not resume at $prev"; fail=1; }; }
  echo "ok: segment stopped by SIGUSR1 at step $stopped (exit 0)"
  prev=$stopped
done
run "$T/job" --resume >"$T/last.log" 2>&1 || { echo "FAIL: final segment rc $?"; tail -5 "$T/last.log"; fail=1; }
grep -q "resumed from .*step-$prev.ckpt at step $prev" "$T/last.log" || { echo "FAIL: final segment did not resume at $prev"; fail=1; }
[ -f "$T/job/STOPPED_BY_SIGNAL" ] && { echo "FAIL: STOPPED_BY_SIGNAL left after a completed run"; fail=1; }

losses "$T/ref/metrics.jsonl" >"$T/a.txt"
losses "$T/job/metrics.jsonl" >"$T/b.txt"
if cmp -s "$T/a.txt" "$T/b.txt"; then
  echo "ok: requeued run's $(wc -l <"$T/b.txt") logged steps equal the uninterrupted run's losses, each step once"
else
  echo "FAIL: losses differ (uninterrupted vs requeued):"; diff "$T/a.txt" "$T/b.txt" | head -20; fail=1
fi
exit $fail
