#!/usr/bin/env bash
# Plots a run's metrics.jsonl as PNG curves: contrastive loss per width, KD loss per width, learning rate,
# throughput. usage: tools/plot_metrics.sh RUN_DIR [OUT_DIR]   (needs gnuplot; python3's json turns the lines into
# columns)
set -euo pipefail
run=${1:?usage: tools/plot_metrics.sh RUN_DIR [OUT_DIR]}
out=${2:-$run}
m="$run/metrics.jsonl"
[ -f "$m" ] || { echo "plot_metrics: no $m" >&2; exit 2; }
command -v gnuplot >/dev/null || { echo "plot_metrics: gnuplot not installed (apt-get install gnuplot-nox)" >&2; exit 2; }
tab=$(mktemp); trap 'rm -f "$tab"' EXIT
# columns: every numeric key of the first training line (lines with a "step" key), in that order; the last value of a
# step wins (a resumed run may log a step twice)
python3 - "$m" > "$tab" <<'PY'
import json, sys
keys, rows = None, {}
for line in open(sys.argv[1]):
    try:
        o = json.loads(line)
    except ValueError:
        continue  # a torn last line
    if not isinstance(o, dict) or "step" not in o:
        continue
    if keys is None:
        keys = [k for k, v in o.items() if isinstance(v, (int, float)) or v is None]
        print("# " + " ".join(keys))
    num = lambda v: "NaN" if v is None or isinstance(v, str) else repr(int(v) if isinstance(v, bool) else v)
    rows[o["step"]] = " ".join(num(o.get(k)) for k in keys)  # dicts keep the first step's place
for r in rows.values():
    print(r)
PY
hdr=$(head -1 "$tab" | sed 's/^# //')
col() { echo "$hdr" | tr ' ' '\n' | grep -n -x "$1" | cut -d: -f1; }
cons=""; kds=""
for k in $hdr; do
  case $k in loss_con_w*) cons="$cons $k";; loss_kd_w*) kds="$kds $k";; esac
done
plot_cols() { # title file ylabel keys...
  local title=$1 file=$2 ylab=$3; shift 3
  local cmd="" k
  for k in "$@"; do cmd="$cmd${cmd:+, }'$tab' using $(col step):$(col "$k") with lines title '${k}'"; done
  gnuplot <<GP
set terminal pngcairo size 900,500 noenhanced
set output '$out/$file'
set title '$title'
set xlabel 'step'
set ylabel '$ylab'
set grid
set key outside right
plot $cmd
GP
  echo "wrote $out/$file"
}
mkdir -p "$out"
# shellcheck disable=SC2086
plot_cols "contrastive loss per width" loss_con.png "loss" $cons
# 0 when some value of these columns is neither 0 nor NaN (a run without distillation logs zeros: no plot of them)
any_nonzero() {
  local cols="" k
  for k in "$@"; do cols="$cols $(col "$k")"; done
  awk -v cols="$cols" 'BEGIN { n = split(cols, c, " ") }
    !/^#/ { for (i = 1; i <= n; i++) if ($c[i] != "NaN" && $c[i] + 0 != 0) { f = 1; exit } }
    END { exit !f }' "$tab"
}
# shellcheck disable=SC2086
if [ -n "$kds" ] && any_nonzero $kds; then
  plot_cols "distillation loss per width (tau^2 x soft CE)" loss_kd.png "loss" $kds
else
  rm -f "$out/loss_kd.png"
fi
plot_cols "learning rate" lr.png "lr" lr
plot_cols "throughput" throughput.png "images/s" img_s
