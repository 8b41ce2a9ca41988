#!/usr/bin/env bash
# A rank that calls sc_fatal ends the whole job quickly with a non-zero exit (no hang), with 1..4 ranks.
source tests/sh/common.inc
bin=$BUILD/tests/mpi/mpi_fatal
for P in 1 2 3 4; do
  for bad in 0 $((P - 1)); do
    t0=$(date +%s)
    timeout 30 $MPIRUN --oversubscribe -np $P "$bin" $bad >/dev/null 2>&1; rc=$?
    dt=$(( $(date +%s) - t0 ))
    if [ $rc -eq 0 ] || [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
      echo "FAIL: -np $P, rank $bad fatal: exit $rc after ${dt}s (want non-zero, no timeout)"; fail=1
    else
      echo "ok: -np $P, rank $bad fatal: exit $rc after ${dt}s"
    fi
  done
done
exit $fail
