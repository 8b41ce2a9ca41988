#!/usr/bin/env bash
# The ScaLAPACK ridge probe equals the serial LAPACK one with 1, 2, 3 and 4 ranks.
set -eu
BUILD=${BUILD:-build}
MPIRUN=${MPIRUN:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bin=$BUILD/tests/mpi/test_ridge
[ -x "$bin" ] || { echo "missing $bin (make first)"; exit 1; }
for p in 1 2 3 4; do
  echo "== $p rank(s)"
  OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1 $MPIRUN --oversubscribe -np $p "$bin" | tee /tmp/mpi_ridge.$$.log
  grep -q '^PASSED' /tmp/mpi_ridge.$$.log || { rm -f /tmp/mpi_ridge.$$.log; echo "FAILED with $p ranks"; exit 1; }
done
rm -f /tmp/mpi_ridge.$$.log
echo "mpi_ridge: ok"
