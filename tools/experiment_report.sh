#!/usr/bin/env bash
# Fills the marked blocks (<!-- BEGIN name --> ... <!-- END name -->) of the B3 report from an experiment
# directory written by jobs/experiment-fmnist.sh. Only measured values are written; a missing run shows as "—".
# usage: tools/experiment_report.sh EXP_DIR TEMPLATE REPORT PLOTS_DIR MODE
#   MODE 0: the real experiment (blocks meta, table, ridge, runs, targets, r2, plots); 1: the same for a smoke run (a
#   banner says so); smoke-block: only the "smoke" block of REPORT (a labelled summary of a smoke run).
set -euo pipefail
exp=${1:?usage: EXP_DIR TEMPLATE REPORT PLOTS_DIR MODE}; tpl=${2:?}; rep=${3:?}; plots=${4:?}; mode=${5:-0}
[ -d "$exp" ] || { echo "experiment_report: no directory $exp" >&2; exit 2; }
[ -f "$tpl" ] || { echo "experiment_report: no template $tpl" >&2; exit 2; }
ALL_RUNS="slimclr naive full random slimclr-seed2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# value of column $3 (by header name) at width $2 in run $1's probe table; empty when absent
val() {
  local f=$exp/$1/eval/probe-exp.csv
  [ -f "$f" ] || return 0
  awk -F, -v w="$2" -v c="$3" 'NR==1 { for (i=1;i<=NF;i++) if ($i==c) k=i; next } k && $1+0==w+0 { print $k; exit }' "$f"
}
pct() { [ -n "$1" ] && awk -v x="$1" 'BEGIN { printf "%.2f", 100*x }' || printf '—'; }
jlast() { [ -f "$1" ] && grep -o "\"$2\":[^,}]*" "$1" | tail -1 | cut -d: -f2 || true; }
have() { [ -f "$exp/$1/eval/probe-exp.csv" ]; }
runs=""; for r in $ALL_RUNS; do have "$r" && runs="$runs $r"; done
# widths: from the first slimmable run that has a table
wsrc=""; for r in slimclr naive random slimclr-seed2 full; do have "$r" && { wsrc=$r; break; }; done
widths=""; [ -n "$wsrc" ] && widths=$(awk -F, 'NR>1 { print $1 }' "$exp/$wsrc/eval/probe-exp.csv")

# ---- blocks ----
{
  [ "$mode" = 1 ] && echo "**SMOKE RUN: a tiny configuration to test the pipeline; these numbers mean nothing.**" && echo
  # shellcheck disable=SC1091
  [ -f "$exp/calibration.env" ] && . "$exp/calibration.env"
  echo "- written: $(date -u +%Y-%m-%dT%H:%M:%SZ) from \`$exp\`"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src include 2>/dev/null || echo ' (+ local changes in src/include)'); calibration at commit ${CAL_COMMIT:-?}"
  echo "- machine: $(nproc) core(s), $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1); host ${CAL_HOST:-?}"
  if [ "${CAL_FIXED_STEPS:-0}" = 1 ]; then # MAX_STEPS (recipe trials): steps, not wall-clock, are the budget
    echo "- layout: ${CAL_LAYOUT:-?}; budget: a fixed ${STEPS_full:-?} steps per run (MAX_STEPS, no wall-clock calibration)"
  else
    echo "- layout: ${CAL_LAYOUT:-?}; budget ${BUDGET_MIN:-?} min of pre-training per run"
    echo "- calibration (${CAL_DATE:-?}, load average ${CAL_LOAD:-?}): s/step all widths ${T_STEP_ALL:-?}, naive ${T_STEP_NAIVE:-?}, full width only ${T_STEP_FULL:-?} → max_steps slimclr ${STEPS_slimclr:-?}, naive ${STEPS_naive:-?}, full ${STEPS_full:-?}"
  fi
  [ -n "${CAL_TRAIN_SETS:-}" ] && echo "- overrides on every run: \`${CAL_TRAIN_SETS}\`"
  pe=$(grep -o 'SGD probe: [^;]*' "$exp/$wsrc/eval/probe-exp.md" 2>/dev/null | head -1 || true)
  ntr=$(grep -o 'train [0-9]* / test [0-9]* images' "$exp/$wsrc/eval/probe-exp.md" 2>/dev/null | head -1 || true)
  echo "- probe: ${pe:-?}; ${ntr:-?}"
} > "$tmp/meta"

{
  hdr="| width | params (M) | MFLOPs/img |"; sep="|---|---|---|"
  for r in $runs; do hdr="$hdr $r |"; sep="$sep---|"; done
  echo "$hdr"; echo "$sep"
  for w in $widths; do
    row="| $w | $(val "$wsrc" "$w" params_M) | $(val "$wsrc" "$w" mflops_per_image) |"
    for r in $runs; do row="$row $(pct "$(val "$r" "$w" top1)") |"; done
    echo "$row"
  done
  echo
  echo "Backbone parameters and forward FLOPs (2 × MACs) per 28×28 image, from \`slimclr eval\`. top-1 in %."
} > "$tmp/table"

{
  hdr="| width |"; sep="|---|"
  for r in $runs; do hdr="$hdr $r |"; sep="$sep---|"; done
  echo "$hdr"; echo "$sep"
  for w in $widths; do
    row="| $w |"
    for r in $runs; do row="$row $(pct "$(val "$r" "$w" ridge_top1)") |"; done
    echo "$row"
  done
} > "$tmp/ridge"

{
  echo "| run | config | steps | epochs | pre-training wall-clock | sittings | last loss | last img/s | probe + ridge s (all widths) |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for r in $ALL_RUNS; do
    d=$exp/$r
    [ -d "$d" ] || continue
    if [ "$r" = random ]; then
      cfgname="experiment-fmnist-slimclr.yaml (random init)"; steps=0; ep=0; wall="—"; sit="—"; loss="—"; ims="—"
    else
      cfgname=$(case $r in slimclr*) echo experiment-fmnist-slimclr.yaml;; *) echo "experiment-fmnist-$r.yaml";; esac)
      steps=$(jlast "$d/metrics.jsonl" step); steps=${steps:-0}
      batch=$(awk '/^optim:/ { o=1; next } /^[a-z]/ { o=0 } o && $1=="batch:" { print $2; exit }' "$d/config.yaml" 2>/dev/null)
      sub=$(awk '/^data:/ { o=1; next } /^[a-z]/ { o=0 } o && $1=="subset:" { print $2; exit }' "$d/config.yaml" 2>/dev/null)
      ntrain=60000; [ -n "$sub" ] && [ "$sub" != 0 ] && ntrain=$sub
      ep=$(awk -v s="$steps" -v b="${batch:-0}" -v n="$ntrain" 'BEGIN { printf "%.2f", s*b/n }')
      if [ -f "$d/wall.log" ]; then
        wall=$(awk '{ s+=$1 } END { printf "%.1f min", s/60 }' "$d/wall.log"); sit=$(wc -l < "$d/wall.log")
      else wall="—"; sit="—"; fi
      [ -f "$d/DONE" ] || wall="$wall (unfinished)"
      loss=$(jlast "$d/metrics.jsonl" loss); ims=$(jlast "$d/metrics.jsonl" img_s)
      loss=$(awk -v x="${loss:-nan}" 'BEGIN { printf "%.4g", x }'); ims=$(awk -v x="${ims:-nan}" 'BEGIN { printf "%.1f", x }')
    fi
    pt=$(awk -F, 'NR==2 { printf "%.1f", $11 } NR>1 { r+=$12 } END { printf " + %.1f", r }' "$d/eval/probe-exp.csv" 2>/dev/null || echo "—")
    echo "| $r | $cfgname | $steps | $ep | $wall | $sit | $loss | $ims | ${pt:-—} |"
  done
  echo
  echo "Wall-clock: \`slimclr train\` as launched by the script (start-up, checkpoints and all), summed over sittings."
  echo "\"last loss\" is the combined SlimCLR loss (with distillation it includes τ² × the teacher's entropy, so it is"
  echo "not comparable across runs; compare the per-width contrastive losses in the plots)."
} > "$tmp/runs"

{
  # a mechanical check against docs/benchmarks.md B3; values in %
  a() { pct "$(val "$1" "$2" top1)"; }
  chk() { # label value op ref
    if [ "$2" = "—" ] || [ "$4" = "—" ]; then echo "| $1 | $2 | $3 $4 | not measured |"
    else echo "| $1 | $2 | $3 $4 | $(awk -v x="$2" -v y="$4" -v op="$3" 'BEGIN { ok = op==">=" ? x>=y : x>y; print ok ? "met" : "NOT met" }') |"; fi
  }
  echo "| target | measured | required | verdict |"; echo "|---|---|---|---|"
  chk "slimclr width 1.0" "$(a slimclr 1)" ">=" 90
  chk "slimclr width 0.25" "$(a slimclr 0.25)" ">=" 85
  for p in "1 83.7" "0.75 81.9" "0.5 80.2" "0.25 77.1"; do
    set -- $p
    chk "slimclr width $1 vs PyTorch $2 + 4" "$(a slimclr "$1")" ">=" "$(awk -v y="$2" 'BEGIN { printf "%.1f", y+4 }')"
  done
  chk "slimclr vs naive, width 0.5" "$(a slimclr 0.5)" ">" "$(a naive 0.5)"
  chk "slimclr vs naive, width 0.25" "$(a slimclr 0.25)" ">" "$(a naive 0.25)"
  f=$(a full 1); chk "slimclr width 1.0 vs full-only − 1" "$(a slimclr 1)" ">=" "$([ "$f" = "—" ] && echo — || awk -v y="$f" 'BEGIN { printf "%.2f", y-1 }')"
} > "$tmp/targets"

{
  # docs/method.md §8.1 R2 from the metrics lines that carry it (the last value of a step wins: resumed runs repeat steps)
  echo "| run | steps with R2 | median R2 | steps with R2 > 1 | median R2, last quarter of training |"
  echo "|---|---|---|---|---|"
  for r in slimclr naive slimclr-seed2; do
    m=$exp/$r/metrics.jsonl
    [ -f "$m" ] || continue
    python3 "$(dirname "$0")/metrics_col.py" "$m" r2 --null skip > "$tmp/r2-$r"
    [ -s "$tmp/r2-$r" ] || continue
    last=$(tail -1 "$tmp/r2-$r" | cut -d' ' -f1)
    awk -v r="$r" -v last="$last" '
      function med(a, k,   i, j, t) { for (i=2;i<=k;i++) { t=a[i]; for (j=i-1;j>=1 && a[j]>t;j--) a[j+1]=a[j]; a[j+1]=t }
                                       return k ? (k%2 ? a[(k+1)/2] : (a[k/2]+a[k/2+1])/2) : "nan" }
      { all[++n]=$2; if ($2 > 1) up++; if ($1 > 0.75*last) q[++m]=$2 }
      END { printf "| %s | %d | %.3g | %d (%.0f%%) | %.3g |\n", r, n, med(all, n), up, 100*up/n, med(q, m) }' "$tmp/r2-$r"
  done
  echo
  echo "R2 = |g(θ_1 \\ θ_0.25)| / |g(θ_0.25)| of the summed loss (docs/method.md §8.1), every \`eval.grad_diag_every\` steps (also"
  echo "during slow start, where only the full width trains). The paper: above 1 with SlimCLR's techniques, below 1 without."
} > "$tmp/r2"

{
  repdir=$(cd "$(dirname "$rep")" 2>/dev/null && pwd || dirname "$rep")
  n=0
  for f in "$plots"/*.png "$plots"/*/loss_con.png; do
    [ -f "$f" ] || continue
    rel=$(realpath --relative-to="$repdir" "$f" 2>/dev/null || echo "$f")
    echo "![${rel}](${rel})"; echo; n=$((n + 1))
  done
  [ $n -gt 0 ] || echo "_no plots (gnuplot missing or no metrics)_"
} > "$tmp/plots"

{
  echo "From \`make experiment-smoke\` ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)): a tiny"
  echo "configuration (\`$(. "$exp/calibration.env" 2>/dev/null; echo "${CAL_TRAIN_SETS:-?}")\`, budget $(. "$exp/calibration.env" 2>/dev/null; echo "${BUDGET_MIN:-?}") min per run, a few probe epochs on a"
  echo "subset) that only proves the pipeline runs end to end. **Not results.**"
  echo
  cat "$tmp/table"; echo; cat "$tmp/runs"
} > "$tmp/smoke"

# replace the body of each block; a block missing from the file is an error (the template changed)
fill() { # file block content
  grep -q "<!-- BEGIN $2 -->" "$1" || { echo "experiment_report: $1 has no block '$2'" >&2; exit 2; }
  awk -v b="<!-- BEGIN $2 -->" -v e="<!-- END $2 -->" -v src="$3" '
    $0==b { print; while ((getline l < src) > 0) print l; skip=1; next }
    $0==e { skip=0 } !skip { print }' "$1" > "$1.tmp" && mv "$1.tmp" "$1"
}
if [ "$mode" = smoke-block ]; then
  fill "$rep" smoke "$tmp/smoke"
else
  [ "$(realpath "$tpl")" = "$(realpath -m "$rep")" ] || cp "$tpl" "$rep"
  for b in meta table ridge runs targets r2 plots; do fill "$rep" "$b" "$tmp/$b"; done
fi
