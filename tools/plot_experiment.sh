#!/usr/bin/env bash
# Plots of the B3 experiment (jobs/experiment-fmnist.sh) as PNG (gnuplot):
#   probe_top1.png       linear-probe top-1 per width, one line per method (+ the B3 PyTorch SlimCLR reference row)
#   grad_ratio_r2.png    docs/method.md §8.1 R2 = sqrt(N(1)^2 - N(w_min)^2) / N(w_min) over training, runs slimclr / naive
#   <run>/loss_con.png   contrastive loss per width over training (tools/plot_metrics.sh), and its other curves
# usage: tools/plot_experiment.sh EXP_DIR OUT_DIR
set -euo pipefail
exp=${1:?usage: tools/plot_experiment.sh EXP_DIR OUT_DIR}
out=${2:?usage: tools/plot_experiment.sh EXP_DIR OUT_DIR}
command -v gnuplot >/dev/null || { echo "plot_experiment: gnuplot not installed (apt-get install gnuplot-nox)" >&2; exit 2; }
[ -d "$exp" ] || { echo "plot_experiment: no directory $exp" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
RUNS="slimclr naive full random slimclr-seed2"

# per-run training curves
for r in $RUNS; do
  [ -s "$exp/$r/metrics.jsonl" ] || continue
  bash "$here/plot_metrics.sh" "$exp/$r" "$out/$r" > /dev/null
done

# probe top-1 per width per method: columns width top1(%) from each run's eval table
plot=""
for r in $RUNS; do
  f=$exp/$r/eval/probe-exp.csv
  [ -f "$f" ] || continue
  awk -F, 'NR==1 { for (i=1;i<=NF;i++) if ($i=="top1") k=i; next } { print $1, 100*$k }' "$f" > "$tmp/$r.dat"
  style="linespoints"; [ "$(wc -l < "$tmp/$r.dat")" -eq 1 ] && style="points pointsize 2"
  plot="$plot${plot:+, }'$tmp/$r.dat' using 1:2 with $style lw 2 title '$r'"
done
if [ -n "$plot" ]; then
  printf '1 83.7\n0.75 81.9\n0.5 80.2\n0.25 77.1\n' > "$tmp/ref.dat"
  gnuplot <<GP
set terminal pngcairo size 900,550 noenhanced
set output '$out/probe_top1.png'
set title 'linear probe top-1 per width (test set)'
set xlabel 'width'
set ylabel 'top-1 (%)'
set xrange [0.2:1.05]
set xtics (0.25, 0.5, 0.75, 1.0)
set grid
set key outside right
plot $plot, '$tmp/ref.dat' using 1:2 with lines dt 2 lc rgb 'gray40' title 'B3 PyTorch SlimCLR (ref)'
GP
  echo "wrote $out/probe_top1.png"
fi

# R2 (and R1) over training from the metrics lines that carry them; the last value of a step wins (resume)
plot=""
for r in slimclr naive slimclr-seed2; do
  m=$exp/$r/metrics.jsonl
  [ -f "$m" ] || continue
  python3 "$here/metrics_col.py" "$m" r2 --null NaN > "$tmp/r2-$r.dat"
  [ -s "$tmp/r2-$r.dat" ] || continue
  plot="$plot${plot:+, }'$tmp/r2-$r.dat' using 1:2 with lines lw 2 title '$r'"
done
if [ -n "$plot" ]; then
  gnuplot <<GP
set terminal pngcairo size 900,500 noenhanced
set output '$out/grad_ratio_r2.png'
set title 'gradient magnitude ratio R2 = |g(theta_1 \\ theta_0.25)| / |g(theta_0.25)| (docs/method.md §8.1)'
set xlabel 'step'
set ylabel 'R2'
set logscale y
set grid
set key outside right
plot $plot, 1 with lines dt 2 lc rgb 'gray40' title 'R2 = 1'
GP
  echo "wrote $out/grad_ratio_r2.png"
fi
