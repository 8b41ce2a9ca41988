#!/usr/bin/env bash
# Recipe screening for B3 (docs/benchmarks.md): short pre-training runs that differ from the experiment's recipe by a few
# --set overrides, each followed by the same probe, so that a recipe change is tried at a fraction of a 60-minute
# run before one is spent on it. Every trial is one run of jobs/experiment-fmnist.sh (RUNS=<run>, a fixed
# MAX_STEPS, TRAIN_SETS=<overrides>) in its own directory, so it is resumable the same way; this script then
# collects one table of all trials.
#
# Trials file (TRIALS_FILE, default jobs/recipe-trials.txt): one trial per line, "#" starts a comment:
#   NAME RUN STEPS [key=value ...]        RUN is full, slimclr or naive (the experiment's configurations)
# Environment: TRIALS_FILE, TRIALS_DIR (profiling/results/recipe-trials), ONLY (names to run, default all), and
# the experiment script's NP, THREADS, MPIRUN, MPI_ARGS, SLIMCLR_BIN.
# Output: $TRIALS_DIR/NAME/ (the run, its eval, report.md with the experiment report's generated blocks), $TRIALS_DIR/summary.md and summary.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS_FILE=${TRIALS_FILE:-jobs/recipe-trials.txt}
TRIALS_DIR=${TRIALS_DIR:-profiling/results/recipe-trials}
ONLY=${ONLY:-}
die() { echo "recipe-trials: error: $*" >&2; exit 2; }
log() { echo "recipe-trials: $*"; }
[ -f "$TRIALS_FILE" ] || die "no trials file $TRIALS_FILE"
mkdir -p "$TRIALS_DIR"

stopping=0
trap 'stopping=1' USR1 TERM INT

# validate the whole file before the first (long) run
names=()
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
  lineno=$((lineno + 1))
  line=${line%%#*}
  read -r -a f <<< "$line" || true
  [ ${#f[@]} -eq 0 ] && continue
  [ ${#f[@]} -ge 3 ] || die "$TRIALS_FILE:$lineno: expected 'NAME RUN STEPS [key=value ...]'"
  case ${f[0]} in *[!A-Za-z0-9._-]*) die "$TRIALS_FILE:$lineno: name '${f[0]}': letters, digits, . _ - only";; esac
  case ${f[1]} in full|slimclr|naive) ;; *) die "$TRIALS_FILE:$lineno: run '${f[1]}': expected full, slimclr or naive";; esac
  case ${f[2]} in ''|*[!0-9]*) die "$TRIALS_FILE:$lineno: steps '${f[2]}': expected a positive integer";; esac
  for kv in "${f[@]:3}"; do
    case $kv in *=*) ;; *) die "$TRIALS_FILE:$lineno: '$kv': expected key=value";; esac
  done
  for n in "${names[@]}"; do [ "$n" != "${f[0]}" ] || die "$TRIALS_FILE:$lineno: duplicate trial name '${f[0]}'"; done
  names+=("${f[0]}")
done < "$TRIALS_FILE"
[ ${#names[@]} -gt 0 ] || die "$TRIALS_FILE lists no trials"

selected() { [ -z "$ONLY" ] && return 0; local o; for o in $ONLY; do [ "$o" = "$1" ] && return 0; done; return 1; }

while IFS= read -r line || [ -n "$line" ]; do
  line=${line%%#*}
  read -r -a f <<< "$line" || true
  [ ${#f[@]} -eq 0 ] && continue
  name=${f[0]} run=${f[1]} steps=${f[2]}
  selected "$name" || continue
  dir=$TRIALS_DIR/$name
  mkdir -p "$dir"
  printf '%s\n' "${f[@]:3}" | grep . > "$dir/sets.txt" || : > "$dir/sets.txt"
  log "$name: $run, $steps steps, ${f[*]:3}"
  EXP_DIR=$dir RUNS=$run MAX_STEPS=$steps TRAIN_SETS="${f[*]:3}" REPORT=$dir/report.md PLOTS=$dir/plots \
    bash jobs/experiment-fmnist.sh < /dev/null >> "$dir/experiment.log" 2>&1 &
  child=$!
  trap 'stopping=1; kill -USR1 $child 2>/dev/null || true' USR1 TERM INT
  rc=0
  wait $child || rc=$?
  while kill -0 $child 2>/dev/null; do wait $child || rc=$?; done
  trap 'stopping=1' USR1 TERM INT
  [ $rc -eq 0 ] || die "$name: the experiment script exited with $rc (see $dir/experiment.log); rerun to resume"
  # the report template's hand-written text is about the experiment, not this trial: keep the generated blocks
  if [ -f "$dir/report.md" ] && grep -q '<!-- BEGIN' "$dir/report.md"; then
    { echo "# Recipe trial $name: $run, $steps steps, overrides: ${f[*]:3}"
      echo
      echo "The generated blocks of the B3 report (jobs/experiment-fmnist.sh) for this trial's run alone."
      echo
      awk '/<!-- BEGIN/ { p = 1 } p { print } /<!-- END/ { p = 0; print "" }' "$dir/report.md"
    } > "$dir/report.md.tmp" && mv "$dir/report.md.tmp" "$dir/report.md"
  fi
  [ $stopping = 0 ] || { log "stopped by a signal; rerun to continue"; exit 0; }
done < "$TRIALS_FILE"

# ---- summary: one row per finished trial (top-1 per width of the switchable probe, ridge at width 1) --------
jlast() { grep -o "\"$2\":[^,}]*" "$1" | tail -1 | cut -d: -f2; }
{
  echo "trial,run,steps,sets,wall_s,loss_w1,top1_w1,top1_w075,top1_w05,top1_w025,ridge_w1"
  for name in "${names[@]}"; do
    d=$TRIALS_DIR/$name
    line=$(grep -E "^${name}[[:space:]]" "$TRIALS_FILE" | head -1)
    read -r -a f <<< "${line%%#*}"
    r=${f[1]}
    csv=$d/$r/eval/probe-exp.csv
    [ -f "$csv" ] || continue
    wall=$(awk '{ s+=$1 } END { printf "%.0f", s }' "$d/$r/wall.log")
    loss=$(jlast "$d/$r/metrics.jsonl" loss_con_w1 || true)
    top=$(awk -F, 'NR>1 { t[$1]=sprintf("%.2f", 100*$5); if ($1=="1") rg=sprintf("%.2f", 100*$8) }
                   END { printf "%s,%s,%s,%s,%s", t["1"], t["0.75"], t["0.5"], t["0.25"], rg }' "$csv")
    echo "$name,$r,${f[2]},\"${f[*]:3}\",$wall,${loss:-},$top"
  done
} > "$TRIALS_DIR/summary.csv"
{
  echo "| trial | run | steps | overrides | wall s | last contrastive loss w1 (depends on T) | top-1 w1 | w0.75 | w0.5 | w0.25 | ridge w1 |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  tail -n +2 "$TRIALS_DIR/summary.csv" | python3 -c '
import csv, sys
for row in csv.reader(sys.stdin):
    if row[5]: row[5] = "%.3f" % float(row[5])
    row = [c if c else "—" for c in row]
    row[3] = "`" + row[3] + "`" if row[3] != "—" else "(the experiment recipe)"
    print("| " + " | ".join(row) + " |")'
} > "$TRIALS_DIR/summary.md"
log "summary: $TRIALS_DIR/summary.md"
cat "$TRIALS_DIR/summary.md"
