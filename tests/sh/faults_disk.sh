#!/usr/bin/env bash
# Full disk while writing a checkpoint: a run checkpointed at step 2 is resumed with a file-size limit below one
# checkpoint (ulimit -f, SIGXFSZ ignored so write() fails with EFBIG as on a full disk); its end-of-run checkpoint
# rewrites step-2.ckpt itself, the hardest case (same final name). The run must stop with a
# message naming the checkpoint, exit non-zero, leave no temporary file, and step-2 must stay `latest` and intact.
# (A per-process limit stands in for a full tmpfs, which needs mount privileges.)
source tests/sh/common.inc
W=$T
mk_small_idx "${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}" "$W/data" 512
ARGS=("$CFG" "${SMALL[@]}" --set data.dir="$W/data" --set data.subset=0 --set run.threads=1 --set run.dir="$W/run")
"$SLIMCLR_BIN" train "${ARGS[@]}" --set optim.max_steps=2 >"$W/a.log" 2>&1 || { cat "$W/a.log"; fail "first run"; }
size=$(stat -c %s "$W/run/checkpoints/step-2.ckpt")
sum=$(md5sum <"$W/run/checkpoints/step-2.ckpt")
t0=$(date +%s)
# the limit is set inside the rank (mpirun and MPI_Init need large shared-memory files of their own)
timeout 120 "$MPIRUN" -np 1 bash -c 'trap "" XFSZ; ulimit -f "$0"; exec "$@"' $(( size / 1024 / 2 )) \
  "$SLIMCLR_BIN" train "${ARGS[@]}" --set optim.max_steps=2 --resume >"$W/b.log" 2>&1
rc=$?
cat "$W/b.log" | grep -iE 'error|resumed'
bad=0
[ $rc -ne 0 ] && [ $rc -lt 124 ] || { echo "FAIL: exit $rc (expected a clean non-zero exit)"; bad=1; }
grep -qE 'checkpoint at step [0-9]+: .*step-[0-9]+.ckpt.*(File too large|No space)' "$W/b.log" || { echo "FAIL: no clear message"; bad=1; }
[ "$(cat "$W/run/checkpoints/latest")" = step-2.ckpt ] || { echo "FAIL: latest moved"; bad=1; }
[ "$(md5sum <"$W/run/checkpoints/step-2.ckpt")" = "$sum" ] || { echo "FAIL: step-2.ckpt changed"; bad=1; }
"$CKPT_VERIFY" --dir "$W/run/checkpoints" || bad=1
ls "$W/run/checkpoints" | grep -q tmp && { echo "FAIL: a temporary file was left"; bad=1; }
echo "disk full: exit $rc after $(( $(date +%s) - t0 ))s; checkpoints: $(ls "$W/run/checkpoints" | tr '\n' ' ')"
exit $bad
