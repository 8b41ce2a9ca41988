#!/usr/bin/env bash
# kill -9 of the whole job (mpirun and both ranks) at random moments, KILLS times, each followed by `--resume`;
# then a final `--resume` to the end. Checks: after every kill, every step-*.ckpt in checkpoints/ and the one
# `latest` names load with the real verifying loader (no half-written checkpoint under a final name); the losses
# of the interrupted run equal the uninterrupted run's bit for bit at every step (same 2 ranks, 1 thread each).
source "$(dirname "$0")/../sh/common.inc"
KILLS=${KILLS:-5}
STEPS=${STEPS:-48}
W=$T
mk_small_idx "${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}" "$W/data" 512
ARGS=("$CFG" "${SMALL[@]}" --set data.dir="$W/data" --set data.subset=0 --set run.threads=1
      --set optim.max_steps="$STEPS" --set checkpoint.every_steps=3)
MPI_NP 2 "$SLIMCLR_BIN" train "${ARGS[@]}" --set run.dir="$W/ref" >"$W/ref.log" 2>&1 || { tail "$W/ref.log"; fail "reference run"; }
t_ref=$(grep -o 'done: [0-9]* steps in [0-9.]* s' "$W/ref.log")
echo "reference: $t_ref"
secs=$(echo "$t_ref" | sed 's/.* in \([0-9.]*\) s/\1/')
RANDOM=${SEED:-$$}
bad=0
for k in $(seq 1 "$KILLS"); do
  MPI_BG 2 "$SLIMCLR_BIN" train "${ARGS[@]}" --set run.dir="$W/run" --resume >>"$W/run.log" 2>&1 &
  pid=$!
  # a random moment within the run's expected length (start-up takes ~2 s more)
  done_steps=$(sed 's/step-\([0-9]*\).ckpt/\1/' "$W/run/checkpoints/latest" 2>/dev/null || echo 0)
  delay=$(awk -v r=$RANDOM -v s="$secs" -v d="${done_steps:-0}" -v n="$STEPS" \
          'BEGIN { printf "%.2f", 1.5 + r / 32767 * s * (n - d) / n }')
  sleep "$delay"
  kids=$(pgrep -P "$pid" | tr '\n' ' ')
  kill -9 "$pid" $kids 2>/dev/null
  wait "$pid" 2>/dev/null
  # the ranks must be gone too (a rank left over would hold the run directory)
  for c in $kids; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$c" 2>/dev/null || break; sleep 0.3; done
    kill -0 "$c" 2>/dev/null && { echo "FAIL: rank process $c survived kill -9"; kill -9 "$c"; bad=1; }
  done
  last=$(metrics_steps "$W/run/metrics.jsonl" 2>/dev/null | tail -1)
  echo "kill $k after ${delay}s: metrics at step ${last:-none}, latest -> $(cat "$W/run/checkpoints/latest" 2>/dev/null)," \
       "$(ls "$W/run/checkpoints" 2>/dev/null | tr '\n' ' ')"
  if ls "$W"/run/checkpoints/step-*.ckpt >/dev/null 2>&1; then
    "$CKPT_VERIFY" --dir "$W/run/checkpoints" >"$W/verify.log" 2>&1 || { cat "$W/verify.log"; echo "FAIL: kill $k"; bad=1; }
  fi
done
MPI_NP 2 "$SLIMCLR_BIN" train "${ARGS[@]}" --set run.dir="$W/run" --resume >>"$W/run.log" 2>&1 || { tail "$W/run.log"; fail "final resume"; }
echo "resumes: $(grep -c 'resumed from' "$W/run.log")"
"$CKPT_VERIFY" --dir "$W/run/checkpoints" >/dev/null || { bad=1; echo "FAIL: final checkpoints"; }
n=0
for s in $(seq 1 "$STEPS"); do
  a=$(loss_at "$W/ref/metrics.jsonl" "$s"); b=$(loss_at "$W/run/metrics.jsonl" "$s")
  [ -n "$a" ] && [ "$a" = "$b" ] || { echo "FAIL: step $s: loss $a (uninterrupted) vs ${b:-missing} (killed + resumed)"; bad=1; }
  n=$((n + 1))
done
echo "compared $n steps"
[ "$(metrics_steps "$W/run/metrics.jsonl" | wc -l)" -eq "$STEPS" ] || { echo "FAIL: steps logged"; bad=1; }
[ $bad -eq 0 ] && echo "PASS: $KILLS kills, losses identical at all $STEPS steps, every checkpoint verified"
exit $bad
