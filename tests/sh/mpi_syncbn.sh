#!/usr/bin/env bash
# SyncBN through comm_bn_reducer() over 1..4 ranks == single-process BN over the union batch.
set -u
BUILD=${BUILD:-build}; MPIRUN=${MPIRUN:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_base_warn_component_unused=0
bin=$BUILD/tests/mpi/mpi_syncbn
fail=0
for P in 1 2 3 4; do
  timeout 120 $MPIRUN --oversubscribe -np $P "$bin" || { echo "FAIL: mpi_syncbn -np $P"; fail=1; }
done
exit $fail
