#!/usr/bin/env bash
# jobs/recipe-trials.sh: a malformed trials file is refused before any run, naming the file, the line and what
# was expected; a toy trial (base 4, 3 steps, 512 images) runs through experiment-fmnist.sh with MAX_STEPS, lands
# in the summary and is skipped on a rerun; a trial directory refuses another MAX_STEPS or the calibrated budget.
set -euo pipefail
source tests/sh/common.inc
BIN=$SLIMCLR_BIN d=$T
fail() { echo "FAIL recipe_trials: $*" >&2; exit 1; }
export SLIMCLR_BIN=$BIN MPIRUN

bad() { # trials-file-content expected-message
  printf '%s\n' "# comment" "$1" > "$d/bad.txt"
  local rc=0
  TRIALS_FILE=$d/bad.txt TRIALS_DIR=$d/badrun bash jobs/recipe-trials.sh > "$d/bad.log" 2>&1 || rc=$?
  [ $rc = 2 ] && grep -qF "$2" "$d/bad.log" || fail "'$1': exit $rc, expected '$2': $(cat "$d/bad.log")"
  [ ! -e "$d/badrun/x" ] || fail "'$1': a run started"
}
bad "x full"                      "bad.txt:2: expected 'NAME RUN STEPS [key=value ...]'"
bad "x fast 10"                   "bad.txt:2: run 'fast': expected full, slimclr or naive"
bad "x full ten"                  "bad.txt:2: steps 'ten': expected a positive integer"
bad "x full 10 method.temperature" "bad.txt:2: 'method.temperature': expected key=value"
bad "a/b full 10"                 "bad.txt:2: name 'a/b'"
printf '%s\n' "x full 10" "x full 20" > "$d/dup.txt"
rc=0; TRIALS_FILE=$d/dup.txt TRIALS_DIR=$d/badrun bash jobs/recipe-trials.sh > "$d/bad.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -qF "dup.txt:2: duplicate trial name 'x'" "$d/bad.log" || fail "duplicate: exit $rc, $(cat "$d/bad.log")"
rc=0; TRIALS_FILE=$d/none.txt bash jobs/recipe-trials.sh > "$d/bad.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -qF "no trials file $d/none.txt" "$d/bad.log" || fail "missing file: exit $rc, $(cat "$d/bad.log")"

# a toy trial, twice: the second pass trains nothing
fm=$(fm_data)
cat > "$d/trials.txt" <<EOF
# toy: every stage runs, nothing is meaningful
toy  full 3  model.base=4 optim.batch=32 method.queue=128 data.subset=512 checkpoint.every_steps=0 method.temperature=0.5 data.dir=$fm
EOF
run_trials() {
  TRIALS_FILE=$d/trials.txt TRIALS_DIR=$d/tr NP=2 EVAL_SETS="eval.probe_epochs=2" \
    EVAL_ARGS="--max-train 512 --max-test 256" bash jobs/recipe-trials.sh
}
run_trials > "$d/out1.log" 2>&1 || { cat "$d/out1.log"; fail "first pass exited non-zero"; }
[ "$(cut -d' ' -f1 "$d/tr/toy/full/DONE")" = "steps=3" ] || fail "DONE: $(cat "$d/tr/toy/full/DONE")"
grep -q 'temperature: 0.5' "$d/tr/toy/full/config.yaml" || fail "the trial's override is not in its config.yaml"
[ "$(metrics_steps "$d/tr/toy/full/metrics.jsonl" | tail -1)" = 3 ] || fail "metrics do not end at step 3"
row=$(grep '^toy,full,3,' "$d/tr/summary.csv") || fail "no toy row in summary.csv: $(cat "$d/tr/summary.csv")"
top1=$(echo "$row" | awk -F, '{ print $(NF-4) }')
awk -v t="$top1" 'BEGIN { exit !(t > 0 && t <= 100) }' || fail "top-1 '$top1' in '$row'"
grep -q '^| toy | full | 3 |' "$d/tr/summary.md" || fail "no toy row in summary.md"
grep -q 'budget: a fixed 3 steps per run' "$d/tr/toy/report.md" || fail "the trial's report does not say its step budget"
head -1 "$d/tr/toy/report.md" | grep -q '^# Recipe trial toy: full, 3 steps' || fail "report.md title: $(head -1 "$d/tr/toy/report.md")"
! grep -q '^## Discussion' "$d/tr/toy/report.md" || fail "the trial's report.md copies the experiment's hand-written text"
run_trials > "$d/out2.log" 2>&1 || { cat "$d/out2.log"; fail "second pass exited non-zero"; }
[ "$(wc -l < "$d/tr/toy/full/wall.log")" = 1 ] || fail "the finished trial trained again"
grep -q 'full: done already' "$d/tr/toy/experiment.log" || fail "second pass did not skip the finished run"

# the trial directory's fixed budget cannot change under it
rc=0; EXP_DIR=$d/tr/toy RUNS=full MAX_STEPS=4 bash jobs/experiment-fmnist.sh > "$d/bad.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "another budget than MAX_STEPS=4" "$d/bad.log" || fail "MAX_STEPS 3 -> 4: exit $rc, $(cat "$d/bad.log")"
rc=0; EXP_DIR=$d/tr/toy RUNS=full bash jobs/experiment-fmnist.sh > "$d/bad.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "fixes the steps" "$d/bad.log" || fail "no MAX_STEPS on a fixed-steps dir: exit $rc, $(cat "$d/bad.log")"
rc=0; EXP_DIR=$d/x RUNS=full MAX_STEPS=1x bash jobs/experiment-fmnist.sh > "$d/bad.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "MAX_STEPS '1x': expected a positive integer" "$d/bad.log" || fail "MAX_STEPS=1x: exit $rc"
echo "PASS recipe_trials"
