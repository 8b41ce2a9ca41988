#!/usr/bin/env bash
# SIGTERM sent to ONE rank's process (rank 1, as a batch system or an OOM-killer precursor might) in a 2-rank
# run: both ranks must checkpoint at the same step boundary and exit 0 (STOPPED_BY_SIGNAL names that step), and
# `--resume` must continue to the end with the same losses as an uninterrupted run. Then SIGTERM to both ranks.
# (SIGUSR1 to mpirun is tests/sh/train_resume.sh.)
source tests/sh/common.inc
W=$T
mk_small_idx "$FMNIST" "$W/data" 512
STEPS=14
ARGS=("$CFG" "${SMALL[@]}" --set data.dir="$W/data" --set data.subset=0 --set run.threads=1
      --set optim.max_steps=$STEPS --set checkpoint.every_steps=100)
MPI_NP 2 "$SLIMCLR_BIN" train "${ARGS[@]}" --set run.dir="$W/ref" >"$W/ref.log" 2>&1 || { tail "$W/ref.log"; fail "reference"; }
bad=0
# make test: SIGTERM to one rank (the harder case); make test-faults adds both ranks (WHO="one both")
for who in ${WHO:-one}; do
  d=$W/$who
  MPI_BG 2 "$SLIMCLR_BIN" train "${ARGS[@]}" --set run.dir="$d" >"$d.log" 2>&1 &
  pid=$!
  metrics_wait "$d/metrics.jsonl" 3 20 "$pid"
  ranks=($(pgrep -P "$pid"))
  [ ${#ranks[@]} -eq 2 ] || { echo "FAIL: expected 2 rank processes under mpirun, found ${#ranks[@]}"; bad=1; }
  if [ $who = one ]; then kill -TERM "${ranks[1]}"; else kill -TERM "${ranks[@]}"; fi
  ( sleep 60; kill -9 "$pid" 2>/dev/null ) & dog=$!
  wait "$pid"; rc=$?
  kill "$dog" 2>/dev/null
  k=$(cat "$d/STOPPED_BY_SIGNAL" 2>/dev/null)
  echo "SIGTERM to $who rank(s): exit $rc, stopped at step ${k:-?}: $(grep 'signal received' "$d.log")"
  [ $rc -eq 0 ] && [ -n "$k" ] && [ "$k" -lt $STEPS ] || { echo "FAIL: exit $rc, marker '${k}'"; tail "$d.log"; bad=1; continue; }
  [ "$(cat "$d/checkpoints/latest")" = "step-$k.ckpt" ] || { echo "FAIL: latest is not step-$k.ckpt"; bad=1; }
  "$CKPT_VERIFY" "$d/checkpoints/step-$k.ckpt" || bad=1
  [ "$(grep -c 'signal received' "$d.log")" -eq 1 ] || { echo "FAIL: the stop message is not printed once"; bad=1; }
  MPI_NP 2 "$SLIMCLR_BIN" train "${ARGS[@]}" --set run.dir="$d" --resume >"$d-2.log" 2>&1 || { tail "$d-2.log"; echo "FAIL: resume"; bad=1; }
  grep -q "resumed from .*step-$k.ckpt at step $k" "$d-2.log" || { echo "FAIL: did not resume at $k"; bad=1; }
  for s in $(seq 1 $STEPS); do
    a=$(loss_at "$W/ref/metrics.jsonl" "$s"); b=$(loss_at "$d/metrics.jsonl" "$s")
    [ -n "$a" ] && [ "$a" = "$b" ] || { echo "FAIL: step $s: $a vs ${b:-missing}"; bad=1; }
  done
done
[ $bad -eq 0 ] && echo "PASS: SIGTERM (${WHO:-one}): same-step checkpoint, exit 0, resumed losses identical"
exit $bad
