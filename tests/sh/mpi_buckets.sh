#!/usr/bin/env bash
# Overlapped gradient buckets == allreduce of the whole arena / P, with 1..4 ranks; once more over TCP.
source tests/sh/common.inc
bin=$BUILD/tests/mpi/mpi_buckets
for P in 1 2 3 4; do
  timeout 180 $MPIRUN --oversubscribe -np $P "$bin" || { echo "FAIL: mpi_buckets -np $P"; fail=1; }
done
timeout 180 $MPIRUN --oversubscribe --mca btl self,tcp -np 2 "$bin" || { echo "FAIL: mpi_buckets over tcp"; fail=1; }
exit $fail
