#!/usr/bin/env bash
# jobs/experiment-fmnist.sh end to end at a toy scale (base 4, 512 images, a 1.8-second budget per run): calibration
# written and reused, DONE markers, r1/r2 in metrics.jsonl, a probe table per run, the filled report; then an
# interrupted run (its last checkpoint and DONE removed) continues with --resume while finished runs are skipped.
set -euo pipefail
source tests/sh/common.inc
BIN=$SLIMCLR_BIN d=$T
fm=$(fm_data)
fail() { echo "FAIL experiment_smoke: $*" >&2; exit 1; }

run_exp() {
  SLIMCLR_BIN=$BIN MPIRUN=$MPIRUN SMOKE=1 EXP_DIR=$d/exp BUDGET_MIN=0.03 CALIB_STEPS=4 RUNS="slimclr naive" \
    TRAIN_SETS="model.base=4 optim.batch=32 method.queue=128 data.subset=512 run.log_every=2 eval.grad_diag_every=2 checkpoint.every_steps=2 checkpoint.keep_last=1000 data.dir=$fm" \
    EVAL_SETS="eval.probe_epochs=2" EVAL_ARGS="--max-train 512 --max-test 256" REPORT=$d/report.md PLOTS=$d/plots \
    NP=2 bash jobs/experiment-fmnist.sh
}

# a bad RUNS entry is refused before any work, naming the variable
rc=0; RUNS=bogus SLIMCLR_BIN=$BIN EXP_DIR=$d/bad bash jobs/experiment-fmnist.sh > "$d/bad.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "RUNS: unknown run 'bogus'" "$d/bad.log" || fail "bad RUNS: exit $rc, $(cat "$d/bad.log")"

run_exp > "$d/out1.log" 2>&1 || { cat "$d/out1.log"; fail "first pass exited non-zero"; }
. "$d/exp/calibration.env"
for v in T_STEP_ALL T_STEP_NAIVE T_STEP_FULL; do
  awk -v x="${!v}" 'BEGIN { exit !(x > 0 && x < 1e4) }' || fail "calibration $v='${!v}'"
done
# the max_steps really come from the budget: 1.8 s / (s per step), at least 2
for r in slimclr naive; do
  n=$(grep -o 'steps=[0-9]*' "$d/exp/$r/DONE" | cut -d= -f2)
  var=STEPS_$r
  [ "$n" = "${!var}" ] || fail "$r ran $n steps, calibration says ${!var}"
  [ "$(metrics_steps "$d/exp/$r/metrics.jsonl" | tail -1)" = "$n" ] || fail "$r: metrics end early"
done
want=$(awk -v a="$T_STEP_ALL" -v f="$T_STEP_FULL" 'BEGIN { n=int(1.8/(0.5*a+0.5*f)); print (n<2?2:n) }')
[ "$STEPS_slimclr" = "$want" ] || fail "slimclr max_steps $STEPS_slimclr, expected $want from the calibration"
# gradient diagnostics: finite R1/R2 on the diagnostics steps of the slimmable runs
[ -n "$(metrics_col "$d/exp/slimclr/metrics.jsonl" r2 --null skip)" ] || fail "no r2 in slimclr metrics.jsonl"
[ -n "$(metrics_col "$d/exp/naive/metrics.jsonl" r1 --null skip)" ] || fail "no r1 in naive metrics.jsonl"
# a probe table for every run, accuracies in (0, 1]; the report carries them as percentages
for r in slimclr naive; do
  f=$d/exp/$r/eval/probe-exp.csv
  [ "$(awk -F, 'NR>1 && $5>0 && $5<=1' "$f" | wc -l)" = 4 ] || fail "$r: probe table $f"
  top=$(awk -F, 'NR==2 { printf "%.2f", 100*$5 }' "$f")
  grep -q "| $top |" "$d/report.md" || fail "$r top-1 $top not in the report"
done
grep -q '<!-- BEGIN table -->' "$d/report.md" || fail "report lost its block markers"
grep -q 'SMOKE RUN' "$d/report.md" || fail "smoke report not labelled"
! grep -q '_not run yet' <(sed -n '/BEGIN meta/,/END plots/p' "$d/report.md") || fail "a report block was left unfilled"
if command -v gnuplot >/dev/null; then
  [ -s "$d/plots/probe_top1.png" ] && [ -s "$d/plots/grad_ratio_r2.png" ] || fail "plots missing"
fi

# an interruption after step 2 of run 'naive': its DONE, eval and later checkpoints gone, latest = step-2
rm -f "$d/exp/naive/DONE" "$d/exp/naive/eval/probe-exp.csv"
for f in "$d"/exp/naive/checkpoints/step-*.ckpt; do [ "${f##*/}" = step-2.ckpt ] || rm -f "$f"; done
[ -f "$d/exp/naive/checkpoints/step-2.ckpt" ] || fail "no step-2 checkpoint to resume from"
echo step-2.ckpt > "$d/exp/naive/checkpoints/latest"
run_exp > "$d/out2.log" 2>&1 || { cat "$d/out2.log"; fail "second pass exited non-zero"; }
grep -q 'calibration: reusing' "$d/out2.log" || fail "calibration not reused"
grep -q 'slimclr: done already' "$d/out2.log" || fail "finished run not skipped"
grep -q 'slimclr: eval done already' "$d/out2.log" || fail "finished eval not skipped"
grep -q 'resumed from .*step-2.ckpt at step 2' "$d/exp/naive/train.log" || fail "naive did not resume from step 2"
grep -q 'sittings=2' "$d/exp/naive/DONE" || fail "naive DONE: $(cat "$d/exp/naive/DONE")"
[ -f "$d/exp/naive/eval/probe-exp.csv" ] || fail "naive not re-evaluated"
echo "PASS experiment_smoke"
