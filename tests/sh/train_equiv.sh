#!/usr/bin/env bash
# Rank-count independence with bn: sync (CONVENTIONS "Batches and semantics"): MoCo v2, MoCo v3 and SimCLR, same
# global batch 24 on 1, 2, 3 and 4 ranks, 20 steps through the slow-start switch (step 10). Per-step losses
# (loss, loss_con_w*, loss_kd_w*) must match the 1-rank run within 1e-4 relative; the final q.params within
# PTOL of the largest parameter (see below); a rerun with the same rank count is bitwise identical.
set -u
source tests/sh/train_common.inc
# PTOL: the runs differ only in float summation order (gradient sum over ranks, per-rank partial sums in the
# convolutions' GEMMs), ~1e-7 relative per step; 20 SGD steps that stay on the same trajectory (losses agree
# to 1e-4) leave parameter differences of a few 1e-6 of the largest weight. 1e-4 leaves a wide margin and
# still catches any real divergence (a wrong gradient scale or a missed rank moves weights by ~lr = 1e-2).
PTOL=1e-4
# MoCo v3 / SimCLR (two views through MLP heads with BN1d, LARS): these runs are chaotic at the 1e-7 level. The
# control that shows it, on ONE rank: the same run with the learning rate perturbed by 1e-7 relative ends with the
# full-width BN parameters (LARS leaves ndim-1 tensors unscaled) ~2e-3 of the largest weight away (MoCo v3, batch
# 48), the same tensors and size as the rank-count differences. So for these methods the test runs that control and
# holds the rank counts to max(PTOL3, 4 x the control's difference): a rank-count dependence beyond the run's own
# float sensitivity still fails. grad_norm is not compared for them (it jumps at the same non-smooth points).
PTOL3=1e-3
rel_of() { sed -n 's/.*relative \([0-9.e+-]*\).*/\1/p' | head -1; }
for m in ${EQUIV_METHODS:-mocov2}; do
  ptol_m=$PTOL
  if [ $m != mocov2 ]; then
    run_train $m 1 "$TMPD/$m-1" ; run_train $m 1 "$TMPD/$m-ctl" --set optim.lr=3.0000003e-4
    ctl=$($CMP ckpt "$TMPD/$m-1/checkpoints/step-20.ckpt" "$TMPD/$m-ctl/checkpoints/step-20.ckpt" q.params 1 | rel_of)
    # the divergence is threshold-like (a 1e-7 nudge may or may not tip a non-smooth point, depending on the
    # rounding of the build): a second control at 1e-5 relative, and the larger of the two counts
    run_train $m 1 "$TMPD/$m-ctl5" --set optim.lr=3.00003e-4
    ctl5=$($CMP ckpt "$TMPD/$m-1/checkpoints/step-20.ckpt" "$TMPD/$m-ctl5/checkpoints/step-20.ckpt" q.params 1 | rel_of)
    ctl=$(awk -v a="${ctl:-0}" -v b="${ctl5:-0}" 'BEGIN { print (b > a ? b : a) }')
    ptol_m=$(awk -v c="${ctl:-0}" -v t=$PTOL3 'BEGIN { v = 4 * c; if (v < t) v = t; printf "%.3g", v }')
    echo "$m control (1 rank, lr x (1+1e-7) and x (1+1e-5)): q.params relative difference ${ctl:-?}; rank-count tolerance $ptol_m"
  fi
  for P in 1 2 3 4; do
    [ $P -eq 1 ] && [ $m != mocov2 ] && continue   # ran above with the control
    run_train $m $P "$TMPD/$m-$P"
    if [ $rc -ne 0 ]; then echo "FAIL: $m on $P rank(s): exit $rc"; tail -5 "$TMPD/$m-$P.log"; fail=1; continue; fi
    grep -q '"slim":1' "$TMPD/$m-$P/metrics.jsonl" && grep -q '"slim":0' "$TMPD/$m-$P/metrics.jsonl" \
      || { echo "FAIL: $m: the run did not cross the slow-start switch"; fail=1; }
    [ $P -eq 1 ] && continue
    # grad_norm too for MoCo v2; MoCo v3 / SimCLR: see PTOL3 above
    g=1; ptol=$ptol_m; [ $m = mocov2 ] || g=0
    check "$m losses P=$P vs P=1" env TRAIN_CMP_GRAD=$g $CMP metrics "$TMPD/$m-1/metrics.jsonl" "$TMPD/$m-$P/metrics.jsonl" 1e-4 1 20
    check "$m q.params P=$P vs P=1" $CMP ckpt "$TMPD/$m-1/checkpoints/step-20.ckpt" \
      "$TMPD/$m-$P/checkpoints/step-20.ckpt" q.params $ptol
  done
  # same rank count twice: nothing may depend on timing (comm thread, bucket order, loader threads)
  run_train $m 3 "$TMPD/$m-3b"
  check "$m rerun P=3 q.params bitwise" $CMP ckpt "$TMPD/$m-3/checkpoints/step-20.ckpt" \
    "$TMPD/$m-3b/checkpoints/step-20.ckpt" q.params 0
  check "$m rerun P=3 losses identical" $CMP metrics "$TMPD/$m-3/metrics.jsonl" "$TMPD/$m-3b/metrics.jsonl" 0
done
exit $fail
