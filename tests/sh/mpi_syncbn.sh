#!/usr/bin/env bash
# SyncBN through comm_bn_reducer() over 1..4 ranks == single-process BN over the union batch.
source tests/sh/common.inc
bin=$BUILD/tests/mpi/mpi_syncbn
for P in 1 2 3 4; do
  timeout 120 $MPIRUN --oversubscribe -np $P "$bin" || { echo "FAIL: mpi_syncbn -np $P"; fail=1; }
done
exit $fail
