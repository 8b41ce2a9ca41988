#!/usr/bin/env bash
# The start-up memory check (the refusals are cases of tests/faults/bad_inputs.sh): SLIMCLR_MEM_CHECK=off lets an
# expert start a run the check would refuse; SLIMCLR_MEM_PER_RANK above the estimate lets it start; `slimclr info`
# shows the same estimate the check uses.
source tests/faults/lib.sh
W=$(mktemp -d /tmp/slimclr-mem.XXXXXX); trap 'rm -rf "$W"' EXIT
mk_small_idx "${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}" "$W/data" 512
ARGS=("$CFG" "${SMALL[@]}" --set data.dir="$W/data" --set data.subset=0 --set run.threads=1 --set optim.max_steps=1)
bad=0
SLIMCLR_MEM_PER_RANK=1M timeout 120 "$SLIMCLR_BIN" train "${ARGS[@]}" --set run.dir="$W/a" >"$W/a.log" 2>&1; rc=$?
[ $rc -eq 2 ] && [ ! -e "$W/a" ] || { echo "FAIL: 1M per rank: exit $rc"; bad=1; }
SLIMCLR_MEM_CHECK=off SLIMCLR_MEM_PER_RANK=1M timeout 120 "$SLIMCLR_BIN" train "${ARGS[@]}" --set run.dir="$W/b" >"$W/b.log" 2>&1; rc=$?
[ $rc -eq 0 ] && grep -q '^done:' "$W/b.log" && echo "ok: SLIMCLR_MEM_CHECK=off starts a run the check refuses" \
  || { echo "FAIL: SLIMCLR_MEM_CHECK=off: exit $rc"; tail -3 "$W/b.log"; bad=1; }
SLIMCLR_MEM_PER_RANK=64G timeout 120 "$SLIMCLR_BIN" train "${ARGS[@]}" --set run.dir="$W/c" >"$W/c.log" 2>&1; rc=$?
[ $rc -eq 0 ] && echo "ok: SLIMCLR_MEM_PER_RANK=64G starts the run" || { echo "FAIL: 64G: exit $rc"; tail -3 "$W/c.log"; bad=1; }
need=$(grep -oE 'needs about [0-9.]+ MB' "$W/a.log" | grep -oE '[0-9.]+')
info=$("$SLIMCLR_BIN" info "${ARGS[@]}" --ranks 1 | sed -nE 's/^  total +([0-9.]+) MB.*/\1/p')
[ -n "$need" ] && [ "$need" = "$info" ] && echo "ok: the refusal's estimate ($need MB) is info's total ($info MB)" \
  || { echo "FAIL: estimate '$need' MB vs info '$info' MB"; bad=1; }
exit $bad
