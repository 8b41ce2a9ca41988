#!/usr/bin/env bash
# The gradient direction over time (docs/method.md §8.2, the reference's "Figure 4b&c"): runs `slimclr graddir`
# on a run trained with eval.grad_diag_every > 0 and plots the projections of the last projection layer's
# gradient on its two principal components against the step (with the slow-start step when given), plus the
# cosine of each snapshot with the previous one and the top-2 singular values from metrics.jsonl.
# usage: tools/plot_grad_direction.sh RUN_DIR [OUT_DIR] [SLOW_START_STEP]
#   writes OUT_DIR/grad_direction.tsv (the table) and, with gnuplot, OUT_DIR/grad_direction.png.
#   SLIMCLR=path/to/slimclr (default build/slimclr, else slimclr on PATH).
set -euo pipefail
run=${1:?usage: tools/plot_grad_direction.sh RUN_DIR [OUT_DIR] [SLOW_START_STEP]}
out=${2:-$run}
ss=${3:-}
bin=${SLIMCLR:-}
[ -n "$bin" ] || { [ -x build/slimclr ] && bin=build/slimclr; } || bin=slimclr
mkdir -p "$out"
tab="$out/grad_direction.tsv"
"$bin" graddir "$run" > "$tab"
head -3 "$tab" | sed 's/^# //'
echo "wrote $tab ($(grep -vc '^#' "$tab") steps)"
command -v gnuplot >/dev/null || { echo "plot_grad_direction: gnuplot not installed (apt-get install gnuplot-nox): table only" >&2; exit 0; }
sv=$(mktemp); trap 'rm -f "$sv"' EXIT
# top-2 singular values of the same layer's gradient, logged by the run at the same steps
python3 - "$run/metrics.jsonl" > "$sv" <<'PY' || true
import json, sys
rows = {}
for line in open(sys.argv[1]):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if isinstance(o, dict) and o.get("sv1_last") is not None and "step" in o:
        rows[o["step"]] = "%d %r %r" % (o["step"], o["sv1_last"], o.get("sv2_last") or float("nan"))
print("\n".join(rows[k] for k in sorted(rows)))
PY
vline=""; [ -n "$ss" ] && vline="set arrow from $ss, graph 0 to $ss, graph 1 nohead lc rgb 'red'; set label 'slow start' at $ss, graph 0.95 tc rgb 'red'"
svplot="plot '$sv' using 1:2 with linespoints title 'sv1', '' using 1:3 with linespoints title 'sv2'"
[ -s "$sv" ] || svplot="set label 'no sv1_last in metrics.jsonl' at graph 0.3, graph 0.5; plot NaN notitle"
gnuplot <<GP
set terminal pngcairo size 900,1100 noenhanced
set output '$out/grad_direction.png'
set multiplot layout 4,1 title 'last projection layer gradient over training (docs/method.md 8.2)'
set grid
set xlabel 'step'
$vline
set ylabel '1st PCA component'
plot '$tab' using 1:2 with points pt 7 ps 0.6 notitle
set ylabel '2nd PCA component'
plot '$tab' using 1:3 with points pt 7 ps 0.6 notitle
set ylabel 'cos(g_t, g_prev)'
set yrange [-1:1]
plot '$tab' using 1:4 with linespoints pt 7 ps 0.5 notitle
set autoscale y
set ylabel 'singular values'
$svplot
unset multiplot
GP
echo "wrote $out/grad_direction.png"
