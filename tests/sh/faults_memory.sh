#!/usr/bin/env bash
# The start-up memory check (the refusals are cases of tests/faults/bad_inputs.sh): SLIMCLR_MEM_CHECK=off lets an
# expert start a run the check would refuse; SLIMCLR_MEM_PER_RANK above the estimate lets it start; `slimclr info`
# shows the same estimate the check uses; in a memory cgroup of 200 MB (created when this runs as root on cgroup v1 or
# v2), a run estimated at 517 MB is refused naming the cgroup's limit file.
source tests/sh/common.inc
W=$T
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
# the cgroup limit: a child cgroup of our own with memory.max / memory.limit_in_bytes = 200 MB
mine=$(sed -n 's/^0::\(.*\)/\1/p' /proc/self/cgroup); v1=$(sed -n 's/^[0-9]*:[^:]*memory[^:]*:\(.*\)/\1/p' /proc/self/cgroup)
CG=""
if [ -n "$v1" ] && [ -w "/sys/fs/cgroup/memory$v1" ]; then CG=/sys/fs/cgroup/memory${v1%/}/slimclr-test.$$; LIM=memory.limit_in_bytes
elif [ -n "$mine" ] && [ -f /sys/fs/cgroup/cgroup.controllers ] && [ -w "/sys/fs/cgroup$mine" ]; then CG=/sys/fs/cgroup${mine%/}/slimclr-test.$$; LIM=memory.max; fi
if [ -n "$CG" ] && mkdir "$CG" 2>/dev/null && echo 209715200 >"$CG/$LIM" 2>/dev/null; then
  bash -c "echo \$\$ >'$CG/cgroup.procs' && exec timeout 120 '$SLIMCLR_BIN' train ${ARGS[*]} --set optim.batch=512 --set method.queue=1024 --set run.dir='$W/cg'" >"$W/cg.log" 2>&1; rc=$?
  rmdir "$CG" 2>/dev/null
  if [ $rc -eq 2 ] && grep -q "may use 209.7 MB here (cgroup /sys/fs/cgroup/.*slimclr-test.$$/$LIM = 0.2 GB / 1 rank" "$W/cg.log" && [ ! -e "$W/cg" ]; then
    echo "ok: in a 200 MB cgroup: $(grep -m1 -o 'needs about.*rank(s) on this node' "$W/cg.log")"
  else echo "FAIL: cgroup limit: exit $rc"; grep -iE 'error|warn' "$W/cg.log"; bad=1; fi
else
  rmdir "$CG" 2>/dev/null
  echo "skip: cannot create a memory cgroup here (not root, or no writable cgroup memory controller)"
fi
exit $bad
