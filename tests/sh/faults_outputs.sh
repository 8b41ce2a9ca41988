#!/usr/bin/env bash
# Outputs of eval / features / export / import:
#  - a write that fails (a file-size limit standing in for a full disk) is a runtime error: exit 1, the errno in the
#    message, the previous probe.csv / probe.md untouched and no temporary file left;
#  - bad --out paths are refused before any work (exit 2): a directory (features --out DIR/), an unknown extension
#    (export --out x.onnx), an existing training checkpoint (export / import --out);
#  - import refuses a safetensors file holding a NaN weight (exit 2, the tensor named).
source tests/sh/common.inc
W=$T
D=$W/data
small_trained_run "$W" 2
REF=$W/run/checkpoints/step-2.ckpt
bad=0
# expect RC NAME PATTERN CMD...
expect() {
  local want=$1 name=$2 pat=$3; shift 3
  "$@" >"$W/$name.log" 2>&1; local rc=$?
  if [ $rc -eq "$want" ] && grep -qE -- "$pat" "$W/$name.log"; then echo "ok: $name (exit $rc): $(grep -m1 -iE 'error' "$W/$name.log" | cut -c1-180)"
  else echo "FAIL: $name: exit $rc (expected $want), pattern /$pat/"; tail -5 "$W/$name.log"; bad=1; fi
}
# the limit inside the rank (MPI_Init needs shared-memory files of its own)
limited() { "$MPIRUN" -np 1 bash -c 'trap "" XFSZ; ulimit -f "$0"; exec "$@"' "$LIMIT" "$@"; }
LIMIT=0
EV=(eval --checkpoint "$REF" --max-train 256 --max-test 128 --set eval.probe_epochs=2 --set run.threads=1)
"$SLIMCLR_BIN" "${EV[@]}" >"$W/eval1.log" 2>&1 || { cat "$W/eval1.log"; fail "eval"; }
sums=$(md5sum "$W/run/eval/probe.csv" "$W/run/eval/probe.md")
expect 1 eval-full-disk 'probe.csv.*failed: File too large' limited "$SLIMCLR_BIN" "${EV[@]}"
[ "$(md5sum "$W/run/eval/probe.csv" "$W/run/eval/probe.md")" = "$sums" ] || { echo "FAIL: the previous tables changed"; bad=1; }
ls "$W/run/eval" | grep -q tmp && { echo "FAIL: a temporary file was left in eval/"; bad=1; }
expect 1 features-full-disk 'feat.npy.*File too large' limited "$SLIMCLR_BIN" features --checkpoint "$REF" --width 1.0 \
  --split test --out "$W/feat.npy" --max 128
expect 1 export-full-disk 'bb.ckpt.*File too large' limited "$SLIMCLR_BIN" export --checkpoint "$REF" --width 1.0 --out "$W/bb.ckpt"
mkdir -p "$W/outdir"
expect 2 features-out-dir 'outdir/: is a directory' "$SLIMCLR_BIN" features --checkpoint "$REF" --width 1.0 --split test \
  --out "$W/outdir/"
expect 2 export-onnx 'not \.onnx' "$SLIMCLR_BIN" export --checkpoint "$REF" --width 0.5 --out "$W/x.onnx"
[ -e "$W/x.onnx" ] && { echo "FAIL: x.onnx written"; bad=1; }
sum=$(md5sum <"$REF")
expect 2 export-over-ckpt 'is a training checkpoint' "$SLIMCLR_BIN" export --checkpoint "$REF" --width 0.5 --out "$REF"
"$SLIMCLR_BIN" export --checkpoint "$REF" --width 1.0 --out "$W/bb.safetensors" >"$W/exp.log" 2>&1 || { cat "$W/exp.log"; fail "export"; }
expect 2 import-over-ckpt 'is a training checkpoint' "$SLIMCLR_BIN" import --from "$W/bb.safetensors" --config "$W/run/config.yaml" --out "$REF"
[ "$(md5sum <"$REF")" = "$sum" ] || { echo "FAIL: the training checkpoint changed"; bad=1; }
# a NaN as the last value of the file (the last tensor's last element)
cp "$W/bb.safetensors" "$W/nan.safetensors"
printf '\x00\x00\xc0\x7f' | dd of="$W/nan.safetensors" bs=1 seek=$(( $(stat -c %s "$W/bb.safetensors") - 4 )) conv=notrunc status=none
expect 2 import-nan 'holds NaN' "$SLIMCLR_BIN" import --from "$W/nan.safetensors" --config "$W/run/config.yaml" --out "$W/nan.ckpt"
[ -e "$W/nan.ckpt" ] && { echo "FAIL: nan.ckpt written"; bad=1; }
exit $bad
