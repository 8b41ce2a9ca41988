#!/usr/bin/env bash
# The ablation keys at the step level (1 rank, one step of a base-8 SlimCLR-MoCov2 after slow start): each changes
# what it should and nothing else. At step 1 every run has the same weights, so the contrastive losses of every
# width equal the baseline's; then
#  - slimclr.loss_reduce: mean        -> the combined loss is the baseline's / 4, the per-width parts unchanged;
#  - slimclr.distill_tau_teacher: 2   -> the distillation terms change (teacher at 2, student at 5);
#  - slimclr.full_distill: true       -> width 0.75 (one larger width: the full one) keeps its KD, 0.5 and 0.25 change;
#  - slimclr.feature_distill: mse     -> the distillation terms change (now an MSE of the normalised outputs);
#  - slimclr.overlap_weight: false    -> (widths 1, 0.5, 0.25) width 0.5's losses change, 1.0's and 0.25's do not;
#                                        with eval.grad_diag_every the diagnostics run on the disjoint blocks;
#  - slimclr.switch_heads: true       -> trains on 2 ranks with overlapped buckets (what it changes: test_model).
# And an ablation key with a method it does not apply to: exit 2 naming the key, before a run directory exists.
set -u
source tests/sh/common.inc
BIN=$SLIMCLR_BIN
COMMON=(--set model.base=8 --set optim.batch=32 --set method.queue=256 --set data.dir="$(fm_data)" --set data.subset=64 --set run.threads=1
        --set optim.max_steps=1 --set slimclr.slow_start=false --set checkpoint.every_minutes=0 --set run.log_every=1
        --set data.workers=0)
run() { # NAME SETS...
  local name=$1; shift
  "$BIN" train yaml/fmnist-slimclr-mocov2.yaml --set run.dir="$T/$name" "${COMMON[@]}" "$@" >"$T/$name.log" 2>&1 \
    || { tail -5 "$T/$name.log"; fail "$name: training"; }
  # the step-1 line as "key value" lines (python's json; the numbers as written)
  python3 -c 'import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l, parse_float=str)
    if o.get("step") == 1: print("\n".join(f"{k} {v}" for k, v in o.items()))' "$T/$name/metrics.jsonl" >"$T/$name.vals" \
    || fail "$name: metrics.jsonl unreadable"
}
val() { awk -v k="$2" '$1 == k { print $2; exit }' "$T/$1.vals"; }
same() { # A B: equal within 1e-6 relative (a missing value fails the test, it never compares equal)
  [ -n "$1" ] && [ -n "$2" ] || fail "a step-1 value is missing ('$1' vs '$2')"
  awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-6 * (1 + (a < 0 ? -a : a))) }'
}
run base
run mean --set slimclr.loss_reduce=mean
run taut --set slimclr.distill_tau_teacher=2
run full --set slimclr.full_distill=true
run mse --set slimclr.feature_distill=mse
for r in mean taut full mse; do
  for w in 1 0.75 0.5 0.25; do
    same "$(val base loss_con_w$w)" "$(val $r loss_con_w$w)" || fail "$r: loss_con_w$w $(val $r loss_con_w$w) differs from the baseline's $(val base loss_con_w$w)"
  done
done
for w in 0.75 0.5 0.25; do
  same "$(val base loss_kd_w$w)" "$(val mean loss_kd_w$w)" || fail "mean: loss_kd_w$w changed"
  same "$(val base loss_kd_w$w)" "$(val taut loss_kd_w$w)" && fail "distill_tau_teacher: loss_kd_w$w unchanged"
  same "$(val base loss_kd_w$w)" "$(val mse loss_kd_w$w)" && fail "feature_distill: loss_kd_w$w unchanged"
done
awk -v a="$(val base loss)" -v b="$(val mean loss)" 'BEGIN { exit !(b > 0 && (a / 4 - b) ^ 2 < 1e-10 * a * a) }' \
  || fail "mean: loss $(val mean loss), expected $(val base loss) / 4"
same "$(val base loss_kd_w0.75)" "$(val full loss_kd_w0.75)" || fail "full_distill: loss_kd_w0.75 changed"
same "$(val base loss_kd_w0.5)" "$(val full loss_kd_w0.5)" && fail "full_distill: loss_kd_w0.5 unchanged"
echo "ok: step-1 losses: base $(val base loss), mean $(val mean loss); KD w0.5: base $(val base loss_kd_w0.5), tau_t 2 $(val taut loss_kd_w0.5), full $(val full loss_kd_w0.5), mse $(val mse loss_kd_w0.5)"
# disjoint channels, widths [1.0, 0.5, 0.25]: width 1.0 (all channels) and width 0.25 (the leading block in both
# layouts) see the same weights at step 1, width 0.5 (channels [0.25C, 0.75C) instead of [0, 0.5C)) does not
run base3 --set "model.widths=[1.0, 0.5, 0.25]"
run disj --set "model.widths=[1.0, 0.5, 0.25]" --set slimclr.overlap_weight=false --set eval.grad_diag_every=1
same "$(val base3 loss_con_w1)" "$(val disj loss_con_w1)" || fail "overlap_weight: loss_con_w1 changed"
same "$(val base3 loss_con_w0.25)" "$(val disj loss_con_w0.25)" || fail "overlap_weight: loss_con_w0.25 changed"
same "$(val base3 loss_con_w0.5)" "$(val disj loss_con_w0.5)" && fail "overlap_weight: loss_con_w0.5 unchanged"
[ -n "$(val disj r1)" ] && [ -n "$(val disj gn_w0.5)" ] || fail "overlap_weight false: no gradient diagnostics (r1, gn_w0.5) logged"
echo "ok: overlap_weight false: loss_con_w0.5 $(val base3 loss_con_w0.5) -> $(val disj loss_con_w0.5), w1 and w0.25 unchanged; grad diagnostics on the disjoint blocks: r1 $(val disj r1)"
# one projection head per width, on 2 ranks with the overlapped gradient buckets (the heads' one hook range)
$MPIRUN --oversubscribe -np 2 "$BIN" train yaml/fmnist-slimclr-mocov2.yaml --set run.dir="$T/switch" "${COMMON[@]}" \
  --set optim.max_steps=3 --set slimclr.switch_heads=true >"$T/switch.log" 2>&1 || { tail -5 "$T/switch.log"; fail "switch_heads"; }
[ "$(metrics_steps "$T/switch/metrics.jsonl" | tr '\n' ' ')" = "1 2 3 " ] || fail "switch_heads: 3 steps expected"
echo "ok: slimclr.switch_heads on 2 ranks: loss $(metrics_col "$T/switch/metrics.jsonl" loss | tail -1)"

refuse() { # NAME PATTERN SETS...
  local name=$1 pat=$2; shift 2
  "$BIN" train yaml/fmnist-slimclr-mocov2.yaml --set run.dir="$T/r-$name" "${COMMON[@]}" "$@" >"$T/r-$name.log" 2>&1
  local rc=$?
  [ $rc -eq 2 ] || { cat "$T/r-$name.log"; fail "$name: exit $rc, expected 2"; }
  grep -q -- "$pat" "$T/r-$name.log" || { cat "$T/r-$name.log"; fail "$name: no '$pat' in the message"; }
  [ ! -e "$T/r-$name" ] || fail "$name: a run directory was created"
  echo "ok: $name refused: $(head -1 "$T/r-$name.log")"
}
refuse full_simclr "slimclr.full_distill: applies to mocov2 only" --set method.name=simclr --set method.queue=0 \
  --set slimclr.full_distill=true
refuse feat_sup "slimclr.feature_distill: applies to the contrastive methods" --set method.name=supervised \
  --set method.queue=0 --set slimclr.feature_distill=kl
refuse switch_v3 "slimclr.switch_heads: applies to mocov2 only" --set method.name=mocov3 --set method.queue=0 \
  --set slimclr.switch_heads=true
refuse disj_widths "slimclr.overlap_weight: false needs the sub-widths side by side" --set slimclr.overlap_weight=false
refuse nodistill "slimclr.distill_tau_teacher: changes the distillation, which is off" --set slimclr.distill=false \
  --set slimclr.distill_tau_teacher=2
echo PASS
