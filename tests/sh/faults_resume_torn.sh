#!/usr/bin/env bash
# Damaged checkpoints met by --resume, and run directories that hold no run:
#  - the checkpoint `latest` names is cut: --resume says loudly which file it skipped and why, and which checkpoint it
#    takes instead (then resumes there);
#  - `latest` itself is empty: said, and the newest complete checkpoint is taken;
#  - `latest` names a file with one flipped byte: a hard error (exit 2) that names the previous good checkpoint;
#  - a directory holding only a config.yaml (what a failed start of an older version left) is not a run: a plain
#    `train` into it starts;
#  - --set "optim.lr = 0.5" (blanks around the key and value) means optim.lr=0.5.
source tests/sh/common.inc
W=$T
mk_small_idx "${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}" "$W/data" 512
ARGS=("$CFG" "${SMALL[@]}" --set data.dir="$W/data" --set data.subset=0 --set run.threads=1 --set optim.max_steps=4)
bad=0
train() { timeout 120 "$SLIMCLR_BIN" train "${ARGS[@]}" "$@"; }
train --set run.dir="$W/run" >"$W/ref.log" 2>&1 || { cat "$W/ref.log"; fail "reference run"; }
CK=$W/run/checkpoints
[ -f "$CK/step-2.ckpt" ] && [ -f "$CK/step-4.ckpt" ] || fail "no step-2 / step-4 checkpoints"
cp -a "$W/run" "$W/pristine"
restore() { rm -rf "$W/run"; cp -a "$W/pristine" "$W/run"; }

# 1. latest's file cut to half
head -c $(( $(stat -c %s "$CK/step-4.ckpt") / 2 )) "$W/pristine/checkpoints/step-4.ckpt" >"$CK/step-4.ckpt"
train --set run.dir="$W/run" --resume >"$W/cut.log" 2>&1; rc=$?
if [ $rc -eq 0 ] && grep -q "warning: --resume: skipped step-4.ckpt, which \`latest\` names: .*truncated" "$W/cut.log" \
   && grep -q "taking $CK/step-2.ckpt (step 2)" "$W/cut.log" && grep -q "resumed from $CK/step-2.ckpt at step 2" "$W/cut.log"; then
  echo "ok: cut latest: $(grep -m1 warning "$W/cut.log" | cut -c1-200)"
else echo "FAIL: cut latest: rc $rc"; grep -iE 'warn|error|resumed|fresh' "$W/cut.log"; bad=1; fi

# 2. latest empty, step-4 fine: the newest complete one, with the reason
restore; : >"$CK/latest"
train --set run.dir="$W/run" --resume >"$W/empty.log" 2>&1; rc=$?
if [ $rc -eq 0 ] && grep -q "latest is empty or cut" "$W/empty.log" && grep -q "resumed from $CK/step-4.ckpt at step 4" "$W/empty.log"; then
  echo "ok: empty latest: $(grep -m1 warning "$W/empty.log" | cut -c1-160)"
else echo "FAIL: empty latest: rc $rc"; grep -iE 'warn|error|resumed|fresh' "$W/empty.log"; bad=1; fi

# 3. one flipped byte in latest's file: a hard error naming the previous good checkpoint
restore; size=$(stat -c %s "$CK/step-4.ckpt")
printf '\x5a' | dd of="$CK/step-4.ckpt" bs=1 seek=$((size / 2)) conv=notrunc status=none
train --set run.dir="$W/run" --resume >"$W/flip.log" 2>&1; rc=$?
if [ $rc -eq 2 ] && grep -q "checksum mismatch.*previous good checkpoint is $CK/step-2.ckpt" "$W/flip.log"; then
  echo "ok: flipped byte: exit 2, previous good checkpoint named"
else echo "FAIL: flipped byte: rc $rc"; grep -iE 'warn|error|resumed' "$W/flip.log"; bad=1; fi
[ -f "$CK/step-4.ckpt" ] && [ -f "$W/run/metrics.jsonl" ] || { echo "FAIL: the refused resume removed files"; bad=1; }

# 4. only a config.yaml (a failed start): not a run
mkdir -p "$W/left"; cp "$W/pristine/config.yaml" "$W/left/"
train --set run.dir="$W/left" >"$W/left.log" 2>&1; rc=$?
if [ $rc -eq 0 ] && grep -q "^done:" "$W/left.log"; then echo "ok: a directory with only config.yaml is reused"
else echo "FAIL: config.yaml alone blocked train: rc $rc"; grep -iE 'error' "$W/left.log"; bad=1; fi

# 5. --set with blanks
out=$("$SLIMCLR_BIN" info "$CFG" --set "optim.lr = 0.5" 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -qE "^optim.lr +0.5 +--set"; then echo "ok: --set \"optim.lr = 0.5\" taken as optim.lr=0.5"
else echo "FAIL: --set with blanks: rc $rc"; echo "$out" | grep -iE 'error|lr' | head -3; bad=1; fi
exit $bad
