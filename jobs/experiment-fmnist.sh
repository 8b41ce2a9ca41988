#!/usr/bin/env bash
# docs/benchmarks.md B3: SlimCLR on Fashion-MNIST per width, with the ablation, at the same wall-clock budget.
#   1 slimclr  SlimCLR-MoCov2 (slow start + distillation + loss weights)   yaml/experiment-fmnist-slimclr.yaml
#   2 naive    slimmable MoCo v2 without the three techniques               yaml/experiment-fmnist-naive.yaml
#   3 full     MoCo v2 at full width only                                   yaml/experiment-fmnist-full.yaml
#   4 random   a randomly initialised network (probe only)                  slimclr eval --random-init
#   (5 slimclr-seed2: run 1 with run.seed+1, when RUNS names it)
# then `slimclr eval` (switchable + ridge probe per width, 10,000 test images) of each, plots, and the report.
#
# Same budget = same wall-clock: a calibration times CALIB_STEPS steps of each configuration and turns BUDGET_MIN
# into optim.max_steps (run 1 pays the cheaper full-width-only step during its slow start, the first half). The
# numbers go to $EXP_DIR/calibration.env, and a later sitting reuses them (a run's max_steps must not change on
# resume). Resumable: a run with a DONE marker is skipped, any other one continues with `train --resume` (which
# starts fresh when it has no checkpoint); an eval whose table exists is skipped. SIGUSR1/SIGTERM to this script
# stops the current run at a checkpoint (rerun the script to continue).
#
# Environment (defaults): EXP_DIR (profiling/results/experiment-fmnist, not tracked: copy it along to continue on another machine), BUDGET_MIN (60), RUNS ("slimclr naive full random"),
# NP (2), THREADS (1 per rank), MPIRUN (mpirun), MPI_ARGS (--bind-to none), SLIMCLR_BIN (./build/slimclr),
# CALIB_STEPS (20: this VM's speed drifts ~10% from minute to minute; 10 steps once gave 0.54 s for a step the run
# then took 0.6-0.67 s for), TRAIN_SETS / EVAL_SETS / EVAL_ARGS (extra --set / eval options, e.g. --max-test), REPORT
# (docs/results-fmnist.md), PLOTS (docs/results-fmnist), SMOKE=1 (a few-minute run of the whole pipeline on a
# subset; report and plots under $EXP_DIR), SMOKE_DOC (a report file whose "smoke" block receives the smoke table),
# MAX_STEPS (a fixed optim.max_steps for every run instead of the calibrated budget: recipe screening, see
# jobs/recipe-trials.sh; recorded in calibration.env, so a later sitting must pass the same value).
set -euo pipefail
set -f # no pathname expansion: the word-split TRAIN_SETS hold patterns such as data.crop_scale=[0.4,1.0]
cd "$(dirname "$0")/.."
ROOT=$PWD

SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
  # tiny: every stage runs, nothing is meaningful. base 8, batch 64 on 2048 images, a few probe epochs.
  EXP_DIR=${EXP_DIR:-/tmp/slimclr-experiment-smoke}
  BUDGET_MIN=${BUDGET_MIN:-0.25}
  CALIB_STEPS=${CALIB_STEPS:-4}
  TRAIN_SETS=${TRAIN_SETS:-"model.base=8 optim.batch=64 method.queue=512 data.subset=2048 run.log_every=2 eval.grad_diag_every=2 checkpoint.every_steps=4"}
  EVAL_SETS=${EVAL_SETS:-"eval.probe_epochs=5"}
  EVAL_ARGS=${EVAL_ARGS:-"--max-train 2048 --max-test 1000"}
  REPORT=${REPORT:-$EXP_DIR/results-fmnist.md}
  PLOTS=${PLOTS:-$EXP_DIR/plots}
fi
EXP_DIR=${EXP_DIR:-profiling/results/experiment-fmnist}
BUDGET_MIN=${BUDGET_MIN:-60}
RUNS=${RUNS:-"slimclr naive full random"}
NP=${NP:-2}
THREADS=${THREADS:-1}
MPIRUN=${MPIRUN:-mpirun}
MPI_ARGS=${MPI_ARGS:---bind-to none}
BIN=${SLIMCLR_BIN:-./build/slimclr}
CALIB_STEPS=${CALIB_STEPS:-20}
MAX_STEPS=${MAX_STEPS:-}
TRAIN_SETS=${TRAIN_SETS:-}
EVAL_SETS=${EVAL_SETS:-}
EVAL_ARGS=${EVAL_ARGS:-}
REPORT=${REPORT:-docs/results-fmnist.md}
PLOTS=${PLOTS:-docs/results-fmnist}
SMOKE_DOC=${SMOKE_DOC:-}
TEMPLATE=$ROOT/docs/results-fmnist.md
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}

die() { echo "experiment: error: $*" >&2; exit 2; }
log() { echo "experiment: $*"; }
[ -x "$BIN" ] || die "no slimclr binary at $BIN (make, or set SLIMCLR_BIN)"
command -v "$MPIRUN" >/dev/null || [ -x "$MPIRUN" ] || die "no $MPIRUN (set MPIRUN)"
[ -f "$TEMPLATE" ] || die "no report template $TEMPLATE"
for r in $RUNS; do
  case $r in slimclr|naive|full|random|slimclr-seed2) ;; *) die "RUNS: unknown run '$r' (slimclr naive full random slimclr-seed2)";; esac
done
mkdir -p "$EXP_DIR"
EXP_DIR=$(cd "$EXP_DIR" && pwd)

# the stop signal reaches mpirun (which forwards SIGUSR1 to the ranks); the run checkpoints and this script exits
child=""
stopping=0
on_signal() { stopping=1; [ -n "$child" ] && kill -USR1 "$child" 2>/dev/null || true; }
trap on_signal USR1 TERM INT

sets_args() { local s out=(); for s in "$@"; do out+=(--set "$s"); done; printf '%s\n' "${out[@]}"; }
mpi() { # runs mpirun in the background so that the trap can forward signals; returns its exit code
  # shellcheck disable=SC2086
  "$MPIRUN" $MPI_ARGS -np "$NP" "$@" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  # a trapped signal interrupts wait: wait again for mpirun to finish its checkpoint
  while kill -0 "$child" 2>/dev/null; do wait "$child" || rc=$?; done
  child=""
  return $rc
}
config_of() { case $1 in slimclr|slimclr-seed2|random) echo yaml/experiment-fmnist-slimclr.yaml;; *) echo "yaml/experiment-fmnist-$1.yaml";; esac; }
# JSON number of key $2 on the last line of file $1 that has it
jlast() { grep -o "\"$2\":[^,}]*" "$1" | tail -1 | cut -d: -f2; }

# ---- calibration -------------------------------------------------------------------------------------------
# median seconds per step over steps 3..N of a short run (step 1 pays the warm-up, step 2 the queue fill)
time_steps() { # name config extra-sets...
  local name=$1 cfg=$2; shift 2
  local dir=$EXP_DIR/calibration/$name
  rm -rf "$dir"; mkdir -p "$EXP_DIR/calibration"
  local sets=() s
  while IFS= read -r s; do sets+=("$s"); done < <(sets_args $TRAIN_SETS "$@" "run.dir=$dir" "run.threads=$THREADS" \
                                                  "optim.max_steps=$CALIB_STEPS" run.log_every=1 eval.grad_diag_every=0)
  mpi "$BIN" train "$cfg" "${sets[@]}" > "$dir.log" 2>&1 || die "calibration run $name failed: see $dir.log"
  python3 tools/metrics_col.py "$dir/metrics.jsonl" elapsed_s | cut -d' ' -f2 |
    awk 'NR>2 { print $1-p } { p=$1 }' | sort -g |
    awk '{ v[++m]=$1 } END { if (m<1) print "nan"; else print (m%2 ? v[(m+1)/2] : (v[m/2]+v[m/2+1])/2) }'
}

CAL=$EXP_DIR/calibration.env
if [ -n "$MAX_STEPS" ]; then
  case $MAX_STEPS in *[!0-9]*) die "MAX_STEPS '$MAX_STEPS': expected a positive integer";; esac
  [ "$MAX_STEPS" -ge 2 ] || die "MAX_STEPS $MAX_STEPS: expected >= 2"
  if [ -f "$CAL" ]; then
    # a run's max_steps must not change on resume
    { grep -qx "STEPS_full=$MAX_STEPS" "$CAL" && grep -q '^CAL_FIXED_STEPS=1' "$CAL"; } ||
      die "$CAL was written for another budget than MAX_STEPS=$MAX_STEPS (use another EXP_DIR, or the same value)"
    log "calibration: fixed MAX_STEPS=$MAX_STEPS (reusing $CAL)"
  else
    cat > "$CAL.tmp" <<EOF
# Fixed step budget (MAX_STEPS=$MAX_STEPS): no wall-clock calibration; every run trains $MAX_STEPS steps.
CAL_FIXED_STEPS=1
CAL_DATE='$(date -u +%Y-%m-%dT%H:%M:%SZ)'
CAL_HOST='$(hostname)'
CAL_COMMIT='$(git rev-parse --short HEAD 2>/dev/null || echo unknown)'
CAL_LAYOUT='$NP rank(s) x $THREADS thread(s), $MPIRUN $MPI_ARGS'
CAL_TRAIN_SETS='$TRAIN_SETS'
BUDGET_MIN=0
STEPS_slimclr=$MAX_STEPS
STEPS_naive=$MAX_STEPS
STEPS_full=$MAX_STEPS
EOF
    mv "$CAL.tmp" "$CAL"
    log "calibration: none, fixed MAX_STEPS=$MAX_STEPS for every run"
  fi
elif [ -f "$CAL" ]; then
  grep -q '^CAL_FIXED_STEPS=1' "$CAL" && die "$CAL fixes the steps (MAX_STEPS=...): pass the same MAX_STEPS, or use another EXP_DIR"
  log "calibration: reusing $CAL"
else
  [ "$CALIB_STEPS" -ge 4 ] || die "CALIB_STEPS must be >= 4 (steps 1-2 are warm-up)"
  log "calibration: timing $CALIB_STEPS steps of each configuration ($NP rank(s) x $THREADS thread(s))"
  # other jobs inflate (and scramble) the step times that become max_steps: say so before they are fixed
  awk -v l="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)" -v n="$(nproc)" 'BEGIN { exit !(l > 1.25*n) }' &&
    log "warning: load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) core(s): the machine is busy, the calibration will be" \
        "pessimistic and noisy (delete $EXP_DIR/calibration.env before the first run to redo it, or edit its STEPS_*)"
  t_all=$(time_steps all yaml/experiment-fmnist-slimclr.yaml slimclr.slow_start=false)
  t_naive=$(time_steps naive yaml/experiment-fmnist-naive.yaml)
  t_full=$(time_steps full yaml/experiment-fmnist-full.yaml)
  budget_s=$(awk -v m="$BUDGET_MIN" 'BEGIN { print m*60 }')
  # run 1: slow start = full-width-only steps for the first half (slimclr.slow_start_epoch 0.5 of 1 epoch)
  steps() { awk -v b="$budget_s" -v t="$1" 'BEGIN { n=int(b/t); print (n<2?2:n) }'; }
  s1=$(steps "$(awk -v a="$t_all" -v f="$t_full" 'BEGIN { print 0.5*f+0.5*a }')")
  s2=$(steps "$t_naive")
  s3=$(steps "$t_full")
  for v in "$t_all" "$t_naive" "$t_full"; do
    awk -v x="$v" 'BEGIN { exit !(x+0 > 0) }' || die "calibration gave a step time of '$v' s (see $EXP_DIR/calibration/*.log)"
  done
  cat > "$CAL.tmp" <<EOF
# B3 calibration: seconds per optimizer step (median of steps 3..$CALIB_STEPS) and the max_steps they give for a
# budget of $BUDGET_MIN minutes. Delete this file to recalibrate (only before any run has started).
CAL_DATE='$(date -u +%Y-%m-%dT%H:%M:%SZ)'
CAL_HOST='$(hostname)'
CAL_LOAD='$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?)'
CAL_COMMIT='$(git rev-parse --short HEAD 2>/dev/null || echo unknown)'
CAL_LAYOUT='$NP rank(s) x $THREADS thread(s), $MPIRUN $MPI_ARGS'
CAL_TRAIN_SETS='$TRAIN_SETS'
BUDGET_MIN=$BUDGET_MIN
T_STEP_ALL=$t_all
T_STEP_NAIVE=$t_naive
T_STEP_FULL=$t_full
STEPS_slimclr=$s1
STEPS_naive=$s2
STEPS_full=$s3
EOF
  mv "$CAL.tmp" "$CAL"
  log "calibration: s/step all widths $t_all, naive $t_naive, full width $t_full -> max_steps $s1 / $s2 / $s3"
fi
# shellcheck disable=SC1090
. "$CAL"
# shellcheck disable=SC2034,SC2154  # read through ${!var} in train_one
STEPS_slimclr_seed2=$STEPS_slimclr

# ---- pre-training ------------------------------------------------------------------------------------------
train_one() {
  local r=$1 dir=$EXP_DIR/$1 cfg
  cfg=$(config_of "$r")
  if [ -f "$dir/DONE" ]; then log "$r: done already ($(cat "$dir/DONE")), skipped"; return 0; fi
  local var=STEPS_${r//-/_}
  local n=${!var}
  local extra=()
  [ "$r" = slimclr-seed2 ] && extra+=("run.seed=3408")
  local sets=() s
  while IFS= read -r s; do sets+=("$s"); done < <(sets_args $TRAIN_SETS "${extra[@]}" "run.dir=$dir" \
                                                  "run.threads=$THREADS" "optim.max_steps=$n")
  mkdir -p "$dir"
  rm -f "$dir/STOPPED_BY_SIGNAL"
  log "$r: training $n steps ($(config_of "$r")) in $dir (log: $dir/train.log)"
  local t0 rc=0
  t0=$(date +%s.%N)
  mpi "$BIN" train "$cfg" "${sets[@]}" --resume >> "$dir/train.log" 2>&1 || rc=$?
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b-a }' >> "$dir/wall.log"
  [ $rc -eq 0 ] || die "$r: train exited with $rc (see $dir/train.log); rerun to resume"
  if [ -f "$dir/STOPPED_BY_SIGNAL" ] || [ $stopping = 1 ]; then
    log "$r: stopped by a signal at a checkpoint; rerun the script to continue"; exit 0
  fi
  local last
  last=$(jlast "$dir/metrics.jsonl" step)
  [ "$last" = "$n" ] || die "$r: train ended at step ${last:-?}, expected $n (see $dir/train.log)"
  echo "steps=$n wall_s=$(awk '{ s+=$1 } END { printf "%.1f", s }' "$dir/wall.log") sittings=$(wc -l < "$dir/wall.log")" > "$dir/DONE"
  log "$r: $(cat "$dir/DONE")"
}

eval_one() {
  local r=$1 dir=$EXP_DIR/$1 sets=() s
  if [ -f "$dir/eval/probe-exp.csv" ]; then log "$r: eval done already, skipped"; return 0; fi
  mkdir -p "$dir"
  if [ "$r" = random ]; then
    while IFS= read -r s; do sets+=("$s"); done < <(sets_args $TRAIN_SETS $EVAL_SETS "run.dir=$dir" "run.threads=$THREADS")
    log "$r: eval of a randomly initialised network (log: $dir/eval.log)"
    # shellcheck disable=SC2086
    mpi "$BIN" eval "$(config_of "$r")" --random-init --tag exp $EVAL_ARGS "${sets[@]}" > "$dir/eval.log" 2>&1 ||
      die "$r: eval failed (see $dir/eval.log)"
  else
    while IFS= read -r s; do sets+=("$s"); done < <(sets_args $EVAL_SETS "run.dir=$dir" "run.threads=$THREADS")
    # checkpoints/latest is a text file naming the newest complete checkpoint
    local ck
    ck=$(head -1 "$dir/checkpoints/latest" 2>/dev/null) || die "$r: no $dir/checkpoints/latest (train first)"
    ck=$dir/checkpoints/$ck
    [ -f "$ck" ] || die "$r: $dir/checkpoints/latest names $ck, which does not exist"
    log "$r: eval of $ck (log: $dir/eval.log)"
    # the checkpoint's own config (model, data), with the probe keys of EVAL_SETS
    # shellcheck disable=SC2086
    mpi "$BIN" eval --checkpoint "$ck" --tag exp $EVAL_ARGS "${sets[@]}" > "$dir/eval.log" 2>&1 ||
      die "$r: eval failed (see $dir/eval.log)"
  fi
  [ -f "$dir/eval/probe-exp.csv" ] || die "$r: eval wrote no $dir/eval/probe-exp.csv"
}

for r in $RUNS; do [ "$r" = random ] || train_one "$r"; [ $stopping = 0 ] || exit 0; done
for r in $RUNS; do eval_one "$r"; [ $stopping = 0 ] || exit 0; done

# ---- plots and report --------------------------------------------------------------------------------------
mkdir -p "$PLOTS"
PLOTS=$(cd "$PLOTS" && pwd)
if command -v gnuplot >/dev/null; then
  bash tools/plot_experiment.sh "$EXP_DIR" "$PLOTS" || log "plots failed (the report is written without them)"
else
  log "gnuplot not installed: no plots"
fi
bash tools/experiment_report.sh "$EXP_DIR" "$TEMPLATE" "$REPORT" "$PLOTS" "$SMOKE"
[ -z "$SMOKE_DOC" ] || bash tools/experiment_report.sh "$EXP_DIR" "$SMOKE_DOC" "$SMOKE_DOC" "$PLOTS" smoke-block
log "report: $REPORT"
