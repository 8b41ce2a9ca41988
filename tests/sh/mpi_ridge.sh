#!/usr/bin/env bash
# The ScaLAPACK ridge probe equals the serial LAPACK one with 1, 2, 3 and 4 ranks.
set -e
source tests/sh/common.inc
bin=$BUILD/tests/mpi/test_ridge
[ -x "$bin" ] || { echo "missing $bin (make first)"; exit 1; }
for p in 1 2 3 4; do
  echo "== $p rank(s)"
  OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1 $MPIRUN --oversubscribe -np $p "$bin" | tee $T/ridge.log
  grep -q '^PASSED' $T/ridge.log || { rm -f $T/ridge.log; echo "FAILED with $p ranks"; exit 1; }
done
rm -f $T/ridge.log
echo "mpi_ridge: ok"
