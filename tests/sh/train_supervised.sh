#!/usr/bin/env bash
# method.name: supervised (the paper's supervised slimmable baseline) end to end, and the refusals that must come
# before a run directory exists:
#  - 8 steps of yaml/fmnist-supervised.yaml at base 8 on 2 ranks: every width's cross-entropy is logged, the loss
#    falls, no key encoder or queue is checkpointed; eval --classifier reports the network's own top-1 per width;
#  - a dataset whose labels are all one class: exit 2 naming method.name, and no run directory;
#  - an ablation key with a method it does not apply to: exit 2 naming the key, and no run directory.
set -u
source tests/sh/common.inc
BIN=$SLIMCLR_BIN
Y=yaml/fmnist-supervised.yaml
run2() { $MPIRUN --oversubscribe -np 2 "$BIN" "$@"; }
SMALL=(--set model.base=8 --set optim.batch=64 --set data.subset=1280 --set run.threads=1
       --set checkpoint.every_minutes=0 --set run.log_every=1)

run2 train $Y --set run.dir="$T/run" --set optim.max_steps=8 "${SMALL[@]}" --set data.dir="$(fm_data)" >"$T/train.log" 2>&1 \
  || { tail -20 "$T/train.log"; fail "supervised training"; }
m="$T/run/metrics.jsonl"
metrics_col "$m" loss_con_w1 loss_con_w0.75 loss_con_w0.5 loss_con_w0.25 --null skip >"$T/ce"
[ "$(wc -l <"$T/ce")" -eq 8 ] || fail "not 8 steps with loss_con_w1 .. w0.25 (numbers) in $m: $(cat "$T/ce")"
first=$(head -1 "$T/ce" | cut -d' ' -f2)
last=$(tail -1 "$T/ce" | cut -d' ' -f2)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(a > 2.0 && a < 2.6 && b < a) }' \
  || fail "width-1.0 cross-entropy $first -> $last (expected about ln 10 = 2.30 at first, then falling)"
echo "ok: supervised training, CE(w1) $first -> $last"
run2 eval --checkpoint "$T/run/checkpoints/step-8.ckpt" --classifier --max-test 400 >"$T/cls.log" 2>&1 \
  || { cat "$T/cls.log"; fail "eval --classifier"; }
csv="$T/run/eval/classifier.csv"
[ "$(tail -n +2 "$csv" | cut -d, -f1 | tr '\n' ' ')" = "1 0.75 0.5 0.25 " ] || { cat "$csv"; fail "classifier.csv widths"; }
tail -n +2 "$csv" | awk -F, '{ if (!($2 >= 0 && $2 <= 1)) bad = 1 } END { exit bad }' || fail "classifier top-1"
echo "ok: eval --classifier: $(tail -n +2 "$csv" | tr '\n' ' ')"

# no labels: every image of class 0 (Fashion-MNIST's images with an all-zero label file)
mkdir -p "$T/nolab"
ln -s "$(fm_data)/train-images-idx3-ubyte" "$T/nolab/"
python3 -c "
import struct
with open('$T/nolab/train-labels-idx1-ubyte', 'wb') as f: f.write(struct.pack('>II', 2049, 60000) + bytes(60000))
" || fail "cannot write the label file"
expect_refusal() { # NAME PATTERN RUNDIR ARGS...
  local name=$1 pat=$2 dir=$3; shift 3
  run2 train "$@" --set run.dir="$dir" "${SMALL[@]}" >"$T/$name.log" 2>&1; local rc=$?
  [ $rc -eq 2 ] || { cat "$T/$name.log"; fail "$name: exit $rc, expected 2"; }
  grep -q -- "$pat" "$T/$name.log" || { cat "$T/$name.log"; fail "$name: no '$pat' in the message"; }
  [ ! -e "$dir" ] || fail "$name: the run directory $dir was created"
  echo "ok: $name refused before a run directory: $(grep -m1 error "$T/$name.log")"
}
expect_refusal nolabels "method.name: supervised needs labelled data" "$T/r-nolab" $Y --set data.dataset=mnist \
  --set data.dir="$T/nolab"
expect_refusal gradscale "method.grad_scale: reference applies to simclr only" "$T/r-gs" $Y \
  --set method.grad_scale=reference
echo PASS
