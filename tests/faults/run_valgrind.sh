#!/usr/bin/env bash
# `make valgrind`: a 2-step single-rank training run (tiny model, 512 images) under valgrind memcheck with Open
# MPI's suppression file and tests/valgrind.supp. Prints the error summary and the definitely-lost bytes; fails
# on invalid reads/writes or uses of uninitialised values in slimclr's own code.
source "$(dirname "$0")/../sh/common.inc"
W=$T
mk_small_idx "${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}" "$W/data" 64
SUPP=(--suppressions=tests/valgrind.supp)
[ -f /usr/share/openmpi/openmpi-valgrind.supp ] && SUPP+=(--suppressions=/usr/share/openmpi/openmpi-valgrind.supp)
timeout 1800 "$MPIRUN" -np 1 valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite "${SUPP[@]}" \
  --log-file="$W/vg.log" "$SLIMCLR_BIN" train "$CFG" "${SMALL[@]}" --set data.dir="$W/data" --set data.subset=0 \
  --set run.threads=1 --set optim.max_steps=2 --set run.dir="$W/run" >"$W/out.log" 2>&1
rc=$?
grep -E 'ERROR SUMMARY|definitely lost|indirectly lost' "$W/vg.log"
own=$(grep -B2 -A20 -E 'Invalid (read|write)|uninitialised' "$W/vg.log" | grep -cE 'src/(core|io|data|nn|model|ssl|optim|comm|blas|eval|cli)/')
echo "valgrind exit $rc; error stacks through slimclr sources: $own"
cp "$W/vg.log" "${VALGRIND_LOG:-/tmp/slimclr-valgrind.log}"; echo "log: ${VALGRIND_LOG:-/tmp/slimclr-valgrind.log}"
grep -q "ERROR SUMMARY" "$W/vg.log" || { echo "FAIL: valgrind did not run"; tail "$W/vg.log"; exit 1; }
[ "$own" -eq 0 ]
