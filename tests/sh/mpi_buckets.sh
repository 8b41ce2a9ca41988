#!/usr/bin/env bash
# Overlapped gradient buckets == allreduce of the whole arena / P, with 1..4 ranks; once more over TCP.
set -u
BUILD=${BUILD:-build}; MPIRUN=${MPIRUN:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_base_warn_component_unused=0
bin=$BUILD/tests/mpi/mpi_buckets
fail=0
for P in 1 2 3 4; do
  timeout 180 $MPIRUN --oversubscribe -np $P "$bin" || { echo "FAIL: mpi_buckets -np $P"; fail=1; }
done
timeout 180 $MPIRUN --oversubscribe --mca btl self,tcp -np 2 "$bin" || { echo "FAIL: mpi_buckets over tcp"; fail=1; }
exit $fail
