#!/usr/bin/env bash
# Training learns, and the monitors of pre-training work:
#  1. a few SimCLR steps on a tiny dataset lower the full width's contrastive loss (mean of the last 5 logged steps
#     below 0.8 x the mean of the first 5; measured 6.6 -> 3.7);
#  2. the kNN monitor (eval.knn_every_epochs) gives the same top-1 per width on 1 and 3 ranks, above chance, and
#     the gradient diagnostics (eval.grad_diag_every) log R1/R2 and the top-2 singular values of the last
#     projection layer's gradient (sv1 >= sv2 >= 0), and its snapshots over time for `slimclr graddir` (§8.2).
set -u
source tests/sh/common.inc

run_train simclr 2 "$TMPD/learn" --set model.base=8 --set data.subset=96 --set optim.batch=48 --set optim.max_steps=40 \
  --set optim.epochs=2 --set method.mlp_dim=64 --set optim.name=sgd --set optim.lr=0.1 --set optim.weight_decay=0
if [ $rc -ne 0 ]; then echo "FAIL: learning run exit $rc"; tail -5 "$TMPD/learn.log"; fail=1
else
  metrics_col "$TMPD/learn/metrics.jsonl" loss_con_w1 | cut -d' ' -f2 >"$TMPD/l"
  read -r first last < <(awk '{v[NR]=$1} END {f=0; l=0; for(i=1;i<=5;i++){f+=v[i]; l+=v[NR-5+i]} print f/5, l/5}' "$TMPD/l")
  if awk -v f="$first" -v l="$last" 'BEGIN { exit !(l < 0.8 * f) }'; then echo "ok: loss lowered: first 5 steps $first, last 5 $last"
  else echo "FAIL: loss not lowered: first 5 steps $first, last 5 $last"; fail=1; fi
fi

mon="--set eval.knn_every_epochs=1 --set eval.knn_subset=300 --set eval.knn_k=20 --set eval.grad_diag_every=5"
for P in 1 3; do
  run_train mocov2 $P "$TMPD/mon$P" $mon
  [ $rc -eq 0 ] || { echo "FAIL: monitor run on $P rank(s): exit $rc"; tail -5 "$TMPD/mon$P.log"; fail=1; }
done
k1=$(grep '^kNN monitor' "$TMPD/mon1.log" | sed 's/ ([0-9.]* s)$//'); k3=$(grep '^kNN monitor' "$TMPD/mon3.log" | sed 's/ ([0-9.]* s)$//')
n=$(METRICS_INDEX=knn_step metrics_col "$TMPD/mon1/metrics.jsonl" | wc -l)
if [ -n "$k1" ] && [ "$k1" = "$k3" ] && [ "$n" -ge 1 ]; then echo "ok: kNN monitor equal on 1 and 3 ranks ($n lines): $(echo "$k1" | tail -1)"
else echo "FAIL: kNN monitor 1 rank [$k1] vs 3 ranks [$k3], $n metrics lines"; fail=1; fi
# top-1 per width in (0.1, 1]: above chance for 10 classes
METRICS_INDEX=knn_step metrics_col "$TMPD/mon1/metrics.jsonl" knn_top1_w1 knn_top1_w0.75 knn_top1_w0.5 knn_top1_w0.25 |
  awk '{ n++; for (i = 2; i <= 5; i++) if (!($i > 0.1 && $i <= 1)) bad++ } END { exit !(n > 0 && bad == 0) }' \
  && echo "ok: kNN top-1 above chance at every width" || { echo "FAIL: kNN top-1 at chance or out of range"; fail=1; }
d=$(metrics_col "$TMPD/mon1/metrics.jsonl" r2 | wc -l)
sv=$(metrics_col "$TMPD/mon1/metrics.jsonl" sv1_last sv2_last |
  awk '{ if (!($2 >= $3 && $3 >= 0 && $2 > 0)) bad++; n++ } END { print n + 0, bad + 0 }')
if [ "$d" -ge 4 ] && [ "${sv% *}" -ge 4 ] && [ "${sv#* }" -eq 0 ]; then echo "ok: grad diagnostics on $d steps (R1/R2, sv1 >= sv2 >= 0)"
else echo "FAIL: grad diagnostics: $d r2 lines, singular values (lines bad) = $sv"; fail=1; fi
# docs/method.md §8.2 over time: the snapshots in grad_direction.bin, one per diagnostics step; `slimclr graddir`
# prints their PCA projections and the cosine with the previous snapshot, which equals the run's gdir_cos
"$SLIMCLR_BIN" graddir "$TMPD/mon1" >"$TMPD/gd.tsv" 2>"$TMPD/gd.err"; grc=$?
metrics_col "$TMPD/mon1/metrics.jsonl" gdir_cos >"$TMPD/gc"
rows=$(grep -vc '^#' "$TMPD/gd.tsv")
cmp=$(awk 'NR == FNR { if ($0 !~ /^#/) c[$1] = $4; next } { n++; if ($2 == "null") { if (c[$1] != "nan") bad++ }
           else { d = $2 - c[$1]; if (!(d < 1e-5 && d > -1e-5 && $2 >= -1 && $2 <= 1)) bad++ } } END { print n + 0, bad + 0 }'       "$TMPD/gd.tsv" "$TMPD/gc")
if [ $grc -eq 0 ] && [ "$rows" -eq "$d" ] && [ "${cmp% *}" -eq "$d" ] && [ "${cmp#* }" -eq 0 ] &&
   grep -q "explained variance ratio pc1 0\.[0-9]* pc2 0\.[0-9]*" "$TMPD/gd.tsv"; then
  echo "ok: gradient direction over time: $rows snapshots, PCA table, cos_prev = metrics gdir_cos"
else echo "FAIL: graddir: exit $grc, $rows rows for $d diagnostics steps, gdir_cos (lines bad) = $cmp; $(cat "$TMPD/gd.err")"; fail=1; fi
"$SLIMCLR_BIN" graddir "$TMPD/nothing-here" >/dev/null 2>"$TMPD/gd.err"; grc=$?
[ $grc -eq 2 ] && grep -q "nothing-here.*eval.grad_diag_every" "$TMPD/gd.err" && echo "ok: graddir without snapshots: exit 2 naming the file" \
  || { echo "FAIL: graddir on a missing file: exit $grc: $(cat "$TMPD/gd.err")"; fail=1; }
exit $fail
