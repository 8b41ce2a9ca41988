#!/usr/bin/env bash
# Threads per rank: run.threads auto takes SLURM_CPUS_PER_TASK (faked as 3) before the affinity mask; every rank's
# binding is printed at start-up; ranks running more threads than their cores are warned about (3 threads on
# the 2 cores of this machine), and unbound ranks that fit (1 thread each, --bind-to none) are not. Under
# `ulimit -s unlimited` (common in cluster job scripts) glibc gives threads its 2 MB default stack: the threads'
# static TLS must fit in it (it did not: OpenMP workers crashed).
set -u
source tests/sh/common.inc
unset SLURM_CPUS_PER_TASK OMP_NUM_THREADS BLIS_NUM_THREADS
cores=$(nproc)
S=(--set model.base=4 --set optim.batch=24 --set method.queue=240 --set optim.max_steps=1 --set data.workers=0
   --set data.subset=96 --set data.dir="$(fm_data)")
train() { # dir [mpirun args] -- [slimclr args]
  local d=$1; shift
  timeout 60 $MPIRUN --oversubscribe -np 2 "$@" "$SLIMCLR_BIN" train yaml/fmnist-slimclr-mocov2.yaml "${S[@]}" \
    --set run.dir="$d" >"$T/out" 2>&1
  rc=$?
}

# 1 thread per rank, unbound: both ranks see all cores and fit: no warning
train "$T/a" --bind-to none -x OMP_NUM_THREADS=1
if [ $rc -eq 0 ] && grep -q "threads: 1 per rank (OMP_NUM_THREADS)" "$T/out" && grep -q "rank 1 on .*: cores .*($cores), 1 thread" "$T/out" \
   && ! grep -q "warning" "$T/out"; then ok "unbound, 1 thread each: bindings printed, no warning"
else bad "unbound 1 thread: rc $rc"; grep -E "threads|rank [01] on|warning" "$T/out"; fi

# fake SLURM_CPUS_PER_TASK=3 (takes precedence over OMP_NUM_THREADS): 3 threads per rank on $cores cores
want=3
train "$T/b" --bind-to none -x SLURM_CPUS_PER_TASK=3 -x OMP_NUM_THREADS=1
if [ $rc -eq 0 ] && grep -q "threads: 3 per rank (SLURM_CPUS_PER_TASK)" "$T/out"; then ok "SLURM_CPUS_PER_TASK=3 -> 3 threads per rank"
else bad "SLURM_CPUS_PER_TASK: rc $rc"; grep -E "threads" "$T/out"; fi
if [ "$cores" -lt 6 ]; then
  grep -q "warning: host .*: 2 rank(s) run 6 threads on $cores core(s) (their masks share cores)" "$T/out" \
    && ok "host oversubscription warned: $(grep 'warning: host' "$T/out" | cut -c1-120)" || bad "no host warning"
fi
if [ "$cores" -lt 3 ]; then
  grep -q "warning: rank 0 runs 3 threads on the $cores core(s) of its mask" "$T/out" && ok "rank oversubscription warned" \
    || bad "no per-rank warning"
fi

# bound to one core each (Open MPI's default for 2 ranks), run.threads 2 overrides the environment
timeout 60 $MPIRUN --oversubscribe -np 2 --bind-to core "$SLIMCLR_BIN" train yaml/fmnist-slimclr-mocov2.yaml "${S[@]}" \
  --set run.threads=2 --set run.dir="$T/d" >"$T/out" 2>&1; rc=$?
if [ $rc -eq 0 ] && grep -q "threads: 2 per rank (run.threads)" "$T/out" && grep -q "rank 0 on .*: cores [0-9]* (1), 2 thread" "$T/out" \
   && grep -q "warning: rank 0 runs 2 threads on the 1 core(s)" "$T/out"; then ok "bound to 1 core with run.threads 2: warned"
else bad "bound + run.threads: rc $rc"; grep -E "threads|rank [01] on|warning" "$T/out"; fi

# unlimited stack: 2 threads on one rank still train
(ulimit -s unlimited && timeout 60 $MPIRUN -np 1 --bind-to none "$SLIMCLR_BIN" train yaml/fmnist-slimclr-mocov2.yaml \
  "${S[@]}" --set run.threads=2 --set run.dir="$T/e" >"$T/out" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "threads: 2 per rank (run.threads)" "$T/out" && ok "ulimit -s unlimited, 2 threads: trains" \
  || { bad "ulimit -s unlimited, 2 threads: rc $rc"; tail -3 "$T/out"; }
exit $fail
